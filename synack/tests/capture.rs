//! Catch-all listeners (any destination, the connection's local address is the one the
//! client asked for) and decide-first listeners (a SYN is held as a connection request
//! until the application accepts or refuses it), as a relay in front of a TUN device
//! uses them. A scripted peer checks the segments; two simulated stacks check that a
//! refusal reaches a client's connect as the error it names.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use synack::sim::Network;
use synack::wire::{self, IcmpRepr, IcmpVersion};
use synack::{
    Capture, ConnectionHandle, Decide, Error, Event, ListenerOptions, Refusal, Stack, TcpState,
    Unreachable,
};

fn captured(h: &mut Harness, prefix: &str) -> synack::ListenerHandle {
    h.stack
        .listen_capture(Capture::all().prefix(prefix.parse().unwrap()), 64)
        .unwrap()
}

fn decide_first(h: &mut Harness, decide: Decide) -> synack::ListenerHandle {
    let l = captured(h, "198.19.0.0/16");
    h.stack
        .set_listener_options(l, {
            let mut options = ListenerOptions::default();
            options.decide = Some(decide);
            options
        })
        .unwrap();
    h.local = "198.19.7.7:443".parse().unwrap();
    l
}

#[test]
fn a_catch_all_listener_answers_for_any_captured_destination_from_that_destination() {
    let mut h = Harness::plain();
    let l = captured(&mut h, "198.19.0.0/16");
    for dst in ["198.19.1.2:80", "198.19.255.1:5201"] {
        h.local = dst.parse().unwrap();
        h.inject_syn(1000);
        let synack = h.expect_one();
        assert!(synack.is(syn_ack()));
        assert_eq!(
            synack.src, h.local,
            "answered from the destination asked for"
        );
        h.inject(ack(), 1001, synack.seq + 1, 65535, b"hi");
        h.outputs();
        let c = h.stack.accept(l).expect("established and queued");
        assert_eq!(h.stack.local_addr(c), Ok(h.local));
        assert_eq!(h.stack.peer_addr(c), Ok(h.peer));
        let mut buf = [0u8; 8];
        assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(2));
    }
}

#[test]
fn a_destination_outside_the_capture_is_not_ours_and_gets_no_answer() {
    let mut h = Harness::plain();
    captured(&mut h, "198.19.0.0/16");
    h.local = "198.20.0.1:80".parse().unwrap();
    h.inject_syn(1000);
    h.expect_none();
    assert_eq!(h.stack.stats().dropped("not_our_address"), 1);
}

#[test]
fn a_listener_bound_to_the_port_comes_before_a_catch_all() {
    let mut h = Harness::plain();
    let any = h
        .stack
        .listen_capture(Capture::all().ports(80..=80), 8)
        .unwrap();
    let bound = h.stack.listen("0.0.0.0:80".parse().unwrap(), 8).unwrap();
    // To one of the stack's own addresses: the bound listener.
    h.inject_syn(1000);
    let s = h.expect_one();
    h.inject(ack(), 1001, s.seq + 1, 65535, &[]);
    assert!(h.stack.accept(bound).is_ok());
    assert_eq!(h.stack.accept(any), Err(Error::WouldBlock));
    // To a captured address (every address is) on a port outside the capture's: a RST,
    // as for a closed port.
    h.local = "198.19.0.1:81".parse().unwrap();
    h.inject_syn(2000);
    let rst = h.expect_one();
    assert!(rst.is(rst_ack()));
    assert_eq!(rst.src, h.local);
    assert_eq!(h.stack.stats().dropped("no_socket"), 1);
}

#[test]
fn ipv6_destinations_are_captured_too() {
    let mut h = Harness::plain();
    h.peer = "[2001:db8::2]:40000".parse().unwrap();
    h.local = "[2001:db8:1::80]:80".parse().unwrap();
    let l = captured(&mut h, "2001:db8:1::/48");
    h.inject_syn(1000);
    let s = h.expect_one();
    assert!(s.is(syn_ack()));
    assert_eq!(s.src, h.local);
    h.inject(ack(), 1001, s.seq + 1, 65535, &[]);
    let c = h.stack.accept(l).unwrap();
    assert_eq!(h.stack.local_addr(c), Ok(h.local));
}

#[test]
fn a_held_request_is_answered_only_when_accepted_and_its_connection_is_the_applications() {
    let mut h = Harness::plain();
    let l = decide_first(&mut h, Decide::new());
    h.inject_syn(1000);
    h.expect_none();
    assert!(h.events.contains(&Event::Request(l)));
    let req = h.stack.take_request(l).expect("a request");
    assert_eq!((req.local, req.remote), (h.local, h.peer));
    assert_eq!(req.options.mss, Some(1460));
    assert_eq!(
        h.stack.take_request(l),
        Err(Error::WouldBlock),
        "reported once"
    );
    // The client retransmits its SYN while the application decides: absorbed.
    h.advance(Duration::from_secs(1));
    h.inject_syn(1000);
    h.expect_none();
    assert_eq!(h.stack.stats().dropped("request_pending"), 1);
    assert_eq!(h.stack.take_request(l), Err(Error::WouldBlock));
    assert_eq!(h.stack.pending_requests(), 1);
    let c = h.stack.accept_request(h.now, req.handle).unwrap();
    let synack = h.expect_one();
    assert!(synack.is(syn_ack()));
    assert_eq!((synack.src, synack.ack), (h.local, 1001));
    assert_eq!(h.stack.pending_requests(), 0);
    h.events.clear();
    h.inject(ack(), 1001, synack.seq + 1, 65535, b"GET");
    assert!(h.events.contains(&Event::Connected(c)), "{:?}", h.events);
    assert_eq!(h.stack.state(c), Ok(TcpState::Established));
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(3));
    assert_eq!(
        h.stack.accept(l),
        Err(Error::WouldBlock),
        "not in the accept queue"
    );
    assert_eq!(
        h.stack.accept_request(h.now, req.handle),
        Err(Error::InvalidHandle),
        "decided once"
    );
    let s = h.stack.stats();
    assert_eq!((s.requests, s.requests_accepted), (1, 1));
}

#[test]
fn a_request_refused_with_a_reset_gets_the_rst_a_closed_port_would() {
    let mut h = Harness::plain();
    let l = decide_first(&mut h, Decide::new());
    h.inject_syn(5000);
    let req = h.stack.take_request(l).unwrap();
    h.stack
        .refuse_request(h.now, req.handle, Refusal::Reset)
        .unwrap();
    let rst = h.expect_one();
    assert!(rst.is(rst_ack()));
    assert_eq!((rst.src, rst.seq, rst.ack), (h.local, 0, 5001));
    assert_eq!(h.stack.stats().requests_refused, 1);
}

#[test]
fn a_request_refused_as_unreachable_gets_an_icmp_error_quoting_the_syn() {
    for (peer, local, what, v6, code) in [
        (
            "198.18.0.2:40000",
            "198.19.7.7:443",
            Unreachable::Port,
            false,
            3,
        ),
        (
            "198.18.0.2:40000",
            "198.19.7.7:443",
            Unreachable::Host,
            false,
            1,
        ),
        (
            "198.18.0.2:40000",
            "198.19.7.7:443",
            Unreachable::Network,
            false,
            0,
        ),
        (
            "198.18.0.2:40000",
            "198.19.7.7:443",
            Unreachable::Prohibited,
            false,
            13,
        ),
        (
            "[2001:db8::2]:40000",
            "[2001:db8:1::7]:443",
            Unreachable::Port,
            true,
            4,
        ),
        (
            "[2001:db8::2]:40000",
            "[2001:db8:1::7]:443",
            Unreachable::Host,
            true,
            3,
        ),
    ] {
        let mut h = Harness::plain();
        let prefix = if v6 {
            "2001:db8:1::/48"
        } else {
            "198.19.0.0/16"
        };
        let l = captured(&mut h, prefix);
        h.stack
            .set_listener_options(l, {
                let mut options = ListenerOptions::default();
                options.decide = Some(Decide::new());
                options
            })
            .unwrap();
        h.peer = peer.parse().unwrap();
        h.local = local.parse().unwrap();
        h.inject_syn(7000);
        let req = h.stack.take_request(l).unwrap();
        h.stack
            .refuse_request(h.now, req.handle, Refusal::Unreachable(what))
            .unwrap();
        let packet = h.stack.poll_transmit(h.now).expect("an ICMP error");
        let (ip, body) = wire::parse_ip(&packet).unwrap();
        assert_eq!((ip.src, ip.dst), (h.local.ip(), h.peer.ip()));
        let version = if v6 { IcmpVersion::V6 } else { IcmpVersion::V4 };
        let repr = IcmpRepr::parse(version, &ip.src, &ip.dst, body).unwrap();
        let IcmpRepr::DestUnreachable {
            code: got,
            invoking,
            ..
        } = repr
        else {
            panic!("{repr:?}");
        };
        assert_eq!(got, code, "{what:?} over IPv{}", if v6 { 6 } else { 4 });
        let quote = wire::QuotedTcp::parse(invoking).expect("the SYN is quoted");
        assert_eq!(
            (
                quote.src,
                quote.src_port,
                quote.dst,
                quote.dst_port,
                quote.seq
            ),
            (
                h.peer.ip(),
                h.peer.port(),
                h.local.ip(),
                h.local.port(),
                7000
            )
        );
        assert_eq!(h.stack.stats().icmp_unreachable_sent, 1);
    }
}

#[test]
fn held_requests_are_bounded_and_time_out_with_the_listeners_answer() {
    let mut h = Harness::plain();
    let decide = Decide::new()
        .max_pending(2)
        .timeout(Duration::from_secs(5))
        .on_timeout(Refusal::Reset);
    let l = decide_first(&mut h, decide);
    for port in [40001, 40002, 40003] {
        h.peer.set_port(port);
        h.inject_syn(100);
    }
    h.expect_none();
    assert_eq!(h.stack.stats().dropped("request_overflow"), 1);
    assert_eq!(h.stack.pending_requests(), 2);
    let first = h.stack.take_request(l).unwrap();
    let sent = h.advance_collect(Duration::from_secs(6));
    let resets: Vec<_> = sent.iter().filter(|(_, s)| s.is(rst_ack())).collect();
    assert_eq!(resets.len(), 2, "{sent:?}");
    assert!(resets
        .iter()
        .all(|(at, _)| *at == synack::Instant::from_secs(6)));
    assert_eq!(h.stack.pending_requests(), 0);
    assert_eq!(h.stack.stats().requests_timed_out, 2);
    assert_eq!(
        h.stack.accept_request(h.now, first.handle),
        Err(Error::InvalidHandle)
    );
    // Room again: the next SYN is held.
    h.peer.set_port(40004);
    h.inject_syn(100);
    assert!(h.stack.take_request(l).is_ok());
}

#[test]
fn closing_a_decide_first_listener_forgets_its_requests() {
    let mut h = Harness::plain();
    let l = decide_first(&mut h, Decide::new());
    h.inject_syn(100);
    let req = h.stack.take_request(l).unwrap();
    h.stack.close_listener(h.now, l).unwrap();
    assert_eq!(h.stack.pending_requests(), 0);
    assert_eq!(
        h.stack.accept_request(h.now, req.handle),
        Err(Error::InvalidHandle)
    );
    h.expect_none();
    assert_eq!(h.stack.poll_timeout(), None, "no deadline left behind");
}

/// A client stack connects through a decide-first relay stack that refuses as told:
/// the client's connect fails at once with the error the refusal names.
fn refused_connect(refusal: Refusal) -> Option<Error> {
    let mut net: Network<Stack> = Network::new(7);
    let client_ip: IpAddr = "198.18.0.2".parse().unwrap();
    let relay_ip: IpAddr = "198.18.0.1".parse().unwrap();
    let mut client = Stack::new(synack::Config::deterministic(1));
    client.add_address(client_ip);
    let mut relay = Stack::new(synack::Config::deterministic(2));
    relay.add_address(relay_ip);
    let l = relay
        .listen_capture(Capture::all().prefix("198.19.0.0/16".parse().unwrap()), 16)
        .unwrap();
    relay
        .set_listener_options(l, {
            let mut options = ListenerOptions::default();
            options.decide = Some(Decide::new());
            options
        })
        .unwrap();
    let c = net.add_host("client", &[client_ip], client);
    let r = net.add_host("relay", &[relay_ip], relay);
    net.add_route("198.19.0.0/16".parse().unwrap(), r);
    let now = net.now();
    let conn: ConnectionHandle = net
        .host_mut(c)
        .connect(now, "198.19.9.9:80".parse::<SocketAddr>().unwrap())
        .unwrap();
    net.flush();
    let deadline = net.now() + Duration::from_millis(500);
    while net.now() < deadline {
        if let Ok(req) = net.host_mut(r).take_request(l) {
            let now = net.now();
            net.host_mut(r)
                .refuse_request(now, req.handle, refusal)
                .unwrap();
            net.flush();
        }
        while let Some(e) = net.host_mut(c).poll_event() {
            if let Event::Error {
                conn: e_conn,
                error,
            } = e
            {
                assert_eq!(e_conn, conn);
                return Some(error);
            }
        }
        if !net.step() {
            break;
        }
    }
    None
}

#[test]
fn a_client_sees_the_refusal_the_relay_chose() {
    assert_eq!(
        refused_connect(Refusal::Reset),
        Some(Error::ConnectionRefused)
    );
    assert_eq!(
        refused_connect(Refusal::Unreachable(Unreachable::Port)),
        Some(Error::ConnectionRefused)
    );
    assert_eq!(
        refused_connect(Refusal::Unreachable(Unreachable::Host)),
        Some(Error::HostUnreachable)
    );
    assert_eq!(
        refused_connect(Refusal::Unreachable(Unreachable::Network)),
        Some(Error::NetworkUnreachable)
    );
    assert_eq!(
        refused_connect(Refusal::Drop),
        None,
        "nothing comes back in time"
    );
}
