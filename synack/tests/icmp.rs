//! ICMP and ICMPv6 at the stack: ping is answered, errors reach the connection whose
//! segment they quote (RFC 1122 4.2.3.9 hard and soft errors, RFC 5927 sequence check,
//! RFC 1191/8201 packet too big), neighbour discovery is ignored but counted.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use synack::wire::{self, IcmpRepr, IcmpVersion, SeqNum, TcpFlags, TcpRepr};
use synack::{Error, Event, TcpState};

const ROUTER_V4: &str = "198.18.0.254";
const ROUTER_V6: &str = "2001:db8::fe";

/// A harness whose stack and peer use IPv6 addresses.
fn v6_harness() -> Harness {
    let mut h = Harness::plain();
    let local: IpAddr = "2001:db8::1".parse().unwrap();
    h.stack.add_address(local);
    h.local = SocketAddr::new(local, 80);
    h.peer = SocketAddr::new("2001:db8::2".parse().unwrap(), 40000);
    h
}

/// The start of the packet we sent with sequence number `seq`, as an ICMP error quotes it.
fn quote(h: &Harness, seq: u32) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: h.local.port(),
        dst_port: h.peer.port(),
        seq: SeqNum::new(seq),
        ack: SeqNum::new(0),
        flags: TcpFlags::SYN,
        window: 0,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    let p = wire::emit_tcp_packet(h.local.ip(), h.peer.ip(), 64, &repr).unwrap();
    let ip_len = if h.local.is_ipv6() { 40 } else { 20 };
    p[..ip_len + 8].to_vec()
}

/// Deliver `msg` from a router on the path to the stack.
fn inject_icmp(h: &mut Harness, msg: &IcmpRepr<'_>) {
    let router: IpAddr = if h.local.is_ipv6() {
        ROUTER_V6.parse().unwrap()
    } else {
        ROUTER_V4.parse().unwrap()
    };
    let p = wire::emit_icmp_packet(router, h.local.ip(), 64, msg).unwrap();
    h.stack.receive(h.now, &p);
    h.drain_events();
}

fn unreachable<'a>(code: u8, invoking: &'a [u8]) -> IcmpRepr<'a> {
    IcmpRepr::DestUnreachable {
        code,
        next_hop_mtu: 0,
        invoking,
    }
}

/// Start an active open; return its handle and our ISS.
fn syn_sent(h: &mut Harness) -> (synack::ConnectionHandle, u32) {
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    (c, s.seq)
}

#[test]
fn ping_is_answered_in_both_ip_versions() {
    for v6 in [false, true] {
        let mut h = if v6 { v6_harness() } else { Harness::plain() };
        let (version, proto, pinger): (_, u8, IpAddr) = if v6 {
            (IcmpVersion::V6, 58, "2001:db8::2".parse().unwrap())
        } else {
            (IcmpVersion::V4, 1, PEER_IP.parse().unwrap())
        };
        let req = IcmpRepr::EchoRequest {
            ident: 0x4242,
            seq: 3,
            data: b"0123456789abcdef",
        };
        let p = wire::emit_icmp_packet(pinger, h.local.ip(), 64, &req).unwrap();
        h.stack.receive(h.now, &p);
        let reply = h.stack.poll_transmit(h.now).expect("an echo reply");
        let (ip, body) = wire::parse_ip(&reply).unwrap();
        assert_eq!((ip.src, ip.dst, ip.protocol), (h.local.ip(), pinger, proto));
        assert_eq!(
            IcmpRepr::parse(version, &ip.src, &ip.dst, body).unwrap(),
            IcmpRepr::EchoReply {
                ident: 0x4242,
                seq: 3,
                data: b"0123456789abcdef"
            }
        );
        assert_eq!(h.stack.poll_transmit(h.now), None, "exactly one reply");
        assert_eq!(h.stack.stats().icmp_echo_replies, 1);
    }
}

// RFC 1122 4.2.3.9: port unreachable is a hard error; in SYN_SENT it aborts the open.
#[test]
fn port_unreachable_aborts_a_connection_in_syn_sent() {
    for v6 in [false, true] {
        let mut h = if v6 { v6_harness() } else { Harness::plain() };
        let (c, iss) = syn_sent(&mut h);
        let q = quote(&h, iss);
        inject_icmp(&mut h, &unreachable(if v6 { 4 } else { 3 }, &q));
        assert_eq!(h.stack.state(c), Ok(TcpState::Closed));
        assert_eq!(h.stack.error(c), Ok(Some(Error::ConnectionRefused)));
        assert!(h.events.contains(&Event::Error {
            conn: c,
            error: Error::ConnectionRefused
        }));
        h.advance(Duration::from_secs(5));
        h.expect_none();
    }
}

// RFC 5461 4.1 (and Linux's tcp_v4_err since 2.0): host or network unreachable is a soft
// error (RFC 1122 4.2.3.9), but while our SYN is unanswered it aborts the connect at once
// with that error, as a REJECT --reject-with icmp-host-unreachable makes connect() fail
// with EHOSTUNREACH on Linux.
#[test]
fn host_or_network_unreachable_fails_a_connect_in_syn_sent_at_once() {
    for (code, error) in [(1, Error::HostUnreachable), (0, Error::NetworkUnreachable)] {
        let mut h = Harness::plain();
        let (c, iss) = syn_sent(&mut h);
        let q = quote(&h, iss);
        inject_icmp(&mut h, &unreachable(code, &q));
        assert_eq!(h.stack.state(c), Ok(TcpState::Closed));
        assert!(h.events.contains(&Event::Error { conn: c, error }));
        h.advance(Duration::from_secs(5));
        h.expect_none();
    }
}

// RFC 1122 4.2.3.9: once synchronized, host unreachable is soft: retransmissions go on,
// the error is reported, and it is what the connection fails with when they run out
// (Linux's sk_err_soft).
#[test]
fn host_unreachable_on_an_established_connection_becomes_the_timeout_error() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.send(h.now, c, b"hello").unwrap();
    h.outputs();
    let q = quote(&h, iss + 1);
    inject_icmp(&mut h, &unreachable(1, &q));
    assert_eq!(h.stack.state(c), Ok(TcpState::Established));
    assert!(h.events.contains(&Event::SoftError {
        conn: c,
        error: Error::HostUnreachable
    }));
    h.advance(Duration::from_secs(2000));
    assert_eq!(h.stack.state(c), Ok(TcpState::Closed));
    assert_eq!(h.stack.error(c), Ok(Some(Error::HostUnreachable)));
}

// RFC 5927 4.1: an error quoting a sequence number we do not have outstanding is
// forged or stale and changes nothing.
#[test]
fn an_icmp_error_quoting_a_sequence_number_not_in_flight_is_ignored() {
    let mut h = Harness::plain();
    let (c, iss) = syn_sent(&mut h);
    let q = quote(&h, iss.wrapping_add(1000));
    inject_icmp(&mut h, &unreachable(3, &q));
    assert_eq!(h.stack.state(c), Ok(TcpState::SynSent));
    assert_eq!(h.stack.stats().dropped("icmp_out_of_window"), 1);
    // An error for a connection that does not exist is counted too.
    h.peer.set_port(40001);
    let q = quote(&h, iss);
    inject_icmp(&mut h, &unreachable(3, &q));
    assert_eq!(h.stack.stats().dropped("icmp_no_connection"), 1);
    assert_eq!(h.stack.stats().icmp_errors, 0);
}

// RFC 5461 4 (and Linux): once synchronized, even a hard error only gets reported; the
// connection goes on.
#[test]
fn a_hard_error_on_an_established_connection_is_only_reported() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.send(h.now, c, b"hello").unwrap();
    h.outputs();
    let q = quote(&h, iss + 1);
    inject_icmp(&mut h, &unreachable(3, &q));
    assert_eq!(h.stack.state(c), Ok(TcpState::Established));
    assert!(h.events.contains(&Event::SoftError {
        conn: c,
        error: Error::ConnectionRefused
    }));
    assert_eq!(h.stack.stats().icmp_errors, 1);
}

// RFC 1191 / RFC 8201: "fragmentation needed" / "packet too big" make later segments fit,
// and what was in flight is re-sent in pieces that fit.
#[test]
fn packet_too_big_shrinks_the_segments_that_follow() {
    for v6 in [false, true] {
        let mut h = if v6 { v6_harness() } else { Harness::plain() };
        // A handshake where the peer offers MSS 1460, so segments start large.
        let (c, iss) = syn_sent(&mut h);
        let mss = synack::wire::TcpOptions {
            mss: Some(1460),
            ..Default::default()
        };
        h.inject_opts(syn_ack(), 5000, iss + 1, 65535, &[], mss);
        h.outputs();
        let data = vec![7u8; 3000];
        h.stack.send(h.now, c, &data).unwrap();
        let sizes: Vec<usize> = h.outputs().iter().map(|s| s.payload.len()).collect();
        assert!(sizes.iter().any(|&n| n > 1300), "{sizes:?}");
        let q = quote(&h, iss + 1);
        let (mtu, expected_mss) = if v6 { (1280, 1220) } else { (1000, 960) };
        let msg = if v6 {
            IcmpRepr::PacketTooBig { mtu, invoking: &q }
        } else {
            IcmpRepr::DestUnreachable {
                code: 4,
                next_hop_mtu: mtu as u16,
                invoking: &q,
            }
        };
        inject_icmp(&mut h, &msg);
        assert_eq!(h.stack.state(c), Ok(TcpState::Established));
        let again = h.outputs();
        assert!(!again.is_empty(), "the flight is re-sent at once");
        assert_eq!(again[0].seq, iss + 1, "from the oldest unacknowledged byte");
        assert!(
            again.iter().all(|s| s.payload.len() <= expected_mss),
            "{:?}",
            again.iter().map(|s| s.payload.len()).collect::<Vec<_>>()
        );
        assert_eq!(again[0].payload.len(), expected_mss);
    }
}

// RFC 4861 messages concern the kernel's side of the link: ignored, counted, no answer.
#[test]
fn neighbour_discovery_is_ignored_and_counted() {
    let mut h = v6_harness();
    let router: IpAddr = ROUTER_V6.parse().unwrap();
    for msg_type in [133u8, 135] {
        let msg = IcmpRepr::Other { msg_type, code: 0 };
        let p = wire::emit_icmp_packet(router, h.local.ip(), 255, &msg).unwrap();
        h.stack.receive(h.now, &p);
    }
    assert_eq!(h.stack.stats().dropped("icmp_neighbour_discovery"), 2);
    assert_eq!(h.stack.poll_transmit(h.now), None);
}

#[test]
fn icmp_with_a_bad_checksum_is_dropped_and_counted() {
    let mut h = Harness::plain();
    let req = IcmpRepr::EchoRequest {
        ident: 1,
        seq: 1,
        data: b"x",
    };
    let mut p = wire::emit_icmp_packet(PEER_IP.parse().unwrap(), h.local.ip(), 64, &req).unwrap();
    let last = p.len() - 1;
    p[last] ^= 0xff;
    h.stack.receive(h.now, &p);
    assert_eq!(h.stack.stats().dropped("bad_icmp_checksum"), 1);
    assert_eq!(h.stack.poll_transmit(h.now), None);
}
