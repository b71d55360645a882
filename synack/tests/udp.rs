//! UDP between simulated stacks: datagrams both ways over IPv4 and IPv6, intact or not
//! at all under loss, reordering and corruption; datagrams larger than the MTU sent in
//! fragments and reassembled; a datagram to a port nobody has answered with ICMP port
//! unreachable (rate-limited), which a connected sender sees as "connection refused";
//! bounded receive queues with counted drops; connected sockets' peer filtering; a
//! catch-all socket that receives for any captured destination and answers from it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use synack::sim::{HostId, LinkConfig, Network};
use synack::stack::UdpHandle;
use synack::{Capture, Config, Error, Stack};

struct Pair {
    net: Network<Stack>,
    a: HostId,
    b: HostId,
}

fn pair(v6: bool, link: LinkConfig) -> (Pair, IpAddr, IpAddr) {
    let (ia, ib): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap())
    };
    let mut net: Network<Stack> = Network::new(3);
    net.set_logging(false);
    let mut sa = Stack::new(Config::deterministic(1));
    sa.add_address(ia);
    let mut sb = Stack::new(Config::deterministic(2));
    sb.add_address(ib);
    let a = net.add_host("a", &[ia], sa);
    let b = net.add_host("b", &[ib], sb);
    net.set_link_both(a, b, link);
    (Pair { net, a, b }, ia, ib)
}

impl Pair {
    fn run(&mut self, d: Duration) {
        self.net.flush();
        self.net.run_for(d);
    }

    /// A UDP socket on `host` bound to `addr`.
    fn bind(&mut self, host: HostId, addr: SocketAddr) -> UdpHandle {
        self.net.host_mut(host).udp_bind(addr).unwrap()
    }

    /// `udp_send_to` on `host` now.
    fn send(
        &mut self,
        host: HostId,
        s: UdpHandle,
        data: &[u8],
        to: SocketAddr,
    ) -> Result<usize, Error> {
        let now = self.net.now();
        self.net.host_mut(host).udp_send_to(now, s, data, to)
    }

    fn drain(&mut self, host: HostId, s: UdpHandle) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut got = Vec::new();
        while let Ok(d) = self.net.host_mut(host).udp_recv(s) {
            got.push((d.from, d.data));
        }
        got
    }
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 7 + i) as u8).collect()
}

#[test]
fn datagrams_cross_both_ways_intact_or_not_at_all_over_a_bad_path() {
    for v6 in [false, true] {
        let link = {
            let mut link = LinkConfig::default();
            link.delay = Duration::from_millis(5);
            link.loss = 0.1;
            link.reorder = 0.2;
            link.duplicate = 0.05;
            link.corrupt = 0.05;
            link
        };
        let (mut p, ia, ib) = pair(v6, link);
        let sa = p.bind(p.a, SocketAddr::new(ia, 0));
        let sb = p.bind(p.b, SocketAddr::new(ib, 53));
        let a_addr = p.net.host(p.a).udp_local_addr(sa).unwrap();
        for i in 0..200 {
            let n = p.send(p.a, sa, &payload(i, 100 + i), SocketAddr::new(ib, 53));
            assert_eq!(n, Ok(100 + i));
        }
        p.run(Duration::from_secs(1));
        let got = p.drain(p.b, sb);
        assert!(
            got.len() > 150 && got.len() < 230,
            "{} of 200 (with duplicates)",
            got.len()
        );
        for (from, data) in &got {
            assert_eq!(*from, a_addr);
            let i = data.len() - 100;
            assert_eq!(
                *data,
                payload(i, 100 + i),
                "a datagram arrives whole or not at all"
            );
        }
        let dropped = p.net.host(p.b).stats().dropped("bad_udp_checksum");
        assert!(dropped > 0, "corrupted datagrams are dropped and counted");
        // And back.
        p.send(p.b, sb, b"answer", a_addr).unwrap();
        p.run(Duration::from_secs(1));
        let back = p.drain(p.a, sa);
        assert!(back
            .iter()
            .all(|(f, d)| *f == SocketAddr::new(ib, 53) && d == b"answer"));
    }
}

#[test]
fn a_datagram_larger_than_the_mtu_is_sent_in_fragments_and_reassembled() {
    for v6 in [false, true] {
        let (mut p, ia, ib) = pair(v6, LinkConfig::default());
        let sa = p.bind(p.a, SocketAddr::new(ia, 1000));
        let sb = p.bind(p.b, SocketAddr::new(ib, 2000));
        let max = if v6 { 65_527 } else { 65_507 };
        for len in [1473, 5000, max] {
            p.send(p.a, sa, &payload(1, len), SocketAddr::new(ib, 2000))
                .unwrap();
        }
        assert_eq!(
            p.send(p.a, sa, &vec![0; max + 1], SocketAddr::new(ib, 2000)),
            Err(Error::MessageTooLong)
        );
        p.run(Duration::from_millis(100));
        let got = p.drain(p.b, sb);
        let lens: Vec<usize> = got.iter().map(|(_, d)| d.len()).collect();
        assert_eq!(lens, [1473, 5000, max], "IPv{}", if v6 { 6 } else { 4 });
        assert!(got.iter().all(|(_, d)| *d == payload(1, d.len())));
        let s = p.net.host(p.a).stats();
        assert!(s.fragments_out > 45, "{} fragments", s.fragments_out);
        assert_eq!(p.net.host(p.b).stats().reassembled, 3);
    }
}

#[test]
fn a_port_nobody_has_answers_port_unreachable_rate_limited_and_a_connected_sender_is_refused() {
    for v6 in [false, true] {
        let (mut p, ia, ib) = pair(v6, LinkConfig::default());
        let sa = p.bind(p.a, SocketAddr::new(ia, 0));
        p.net
            .host_mut(p.a)
            .udp_connect(sa, SocketAddr::new(ib, 9))
            .unwrap();
        let now = p.net.now();
        for _ in 0..20 {
            p.net.host_mut(p.a).udp_send(now, sa, b"anyone?").unwrap();
        }
        p.run(Duration::from_millis(100));
        let b = p.net.host(p.b).stats();
        assert_eq!(
            b.icmp_unreachable_sent, 6,
            "a burst of 6, then rate-limited"
        );
        assert_eq!(b.dropped("icmp_rate_limited"), 14);
        assert_eq!(b.dropped("udp_no_socket"), 20);
        assert_eq!(
            p.net.host_mut(p.a).udp_recv(sa),
            Err(Error::ConnectionRefused),
            "reported once to the connected socket"
        );
        assert_eq!(p.net.host_mut(p.a).udp_recv(sa), Err(Error::WouldBlock));
        // One more token a second.
        p.run(Duration::from_secs(1));
        let now = p.net.now();
        p.net.host_mut(p.a).udp_send(now, sa, b"again").unwrap();
        p.run(Duration::from_millis(100));
        assert_eq!(p.net.host(p.b).stats().icmp_unreachable_sent, 7);
    }
}

#[test]
fn a_full_receive_queue_drops_and_counts_and_a_connected_socket_takes_only_its_peer() {
    let (mut p, ia, ib) = pair(false, LinkConfig::default());
    let sa = p.bind(p.a, SocketAddr::new(ia, 0));
    let other = p.bind(p.a, SocketAddr::new(ia, 0));
    let sb = p.bind(p.b, SocketAddr::new(ib, 7));
    for i in 0..1500 {
        p.send(p.a, sa, &payload(i, 10), SocketAddr::new(ib, 7))
            .unwrap();
    }
    p.run(Duration::from_millis(100));
    let kept = p.net.host(p.b).udp_queue_len(sb).unwrap();
    let dropped = p.net.host(p.b).stats().dropped("udp_queue_full");
    // 212,992 bytes at 266 bytes a datagram: 800 fit.
    assert_eq!((kept, dropped), (800, 700));
    assert_eq!(p.drain(p.b, sb).len(), 800);
    // Connected to `sa`: what `other` sends is not taken.
    let a_addr = p.net.host(p.a).udp_local_addr(sa).unwrap();
    p.net.host_mut(p.b).udp_connect(sb, a_addr).unwrap();
    p.send(p.a, other, b"stranger", SocketAddr::new(ib, 7))
        .unwrap();
    p.send(p.a, sa, b"peer", SocketAddr::new(ib, 7)).unwrap();
    p.run(Duration::from_millis(100));
    let got = p.drain(p.b, sb);
    assert_eq!(got, vec![(a_addr, b"peer".to_vec())]);
}

#[test]
fn a_catch_all_socket_receives_for_captured_destinations_and_answers_from_them() {
    let (mut p, ia, _) = pair(false, LinkConfig::default());
    p.net.add_route("198.19.0.0/16".parse().unwrap(), p.b);
    let relay = p
        .net
        .host_mut(p.b)
        .udp_bind_capture(Capture::all().prefix("198.19.0.0/16".parse().unwrap()))
        .unwrap();
    let sa = p.bind(p.a, SocketAddr::new(ia, 5353));
    let dns: SocketAddr = "198.19.53.53:53".parse().unwrap();
    p.send(p.a, sa, b"query", dns).unwrap();
    p.run(Duration::from_millis(50));
    let d = p.net.host_mut(p.b).udp_recv(relay).unwrap();
    assert_eq!(
        (d.from, d.to, d.data.as_slice()),
        (SocketAddr::new(ia, 5353), dns, &b"query"[..])
    );
    let now = p.net.now();
    p.net
        .host_mut(p.b)
        .udp_send_from(now, relay, b"answer", d.to, d.from)
        .unwrap();
    p.run(Duration::from_millis(50));
    assert_eq!(p.drain(p.a, sa), vec![(dns, b"answer".to_vec())]);
    // Not from an address it does not capture.
    assert_eq!(
        p.net.host_mut(p.b).udp_send_from(
            now,
            relay,
            b"x",
            "198.20.0.1:53".parse().unwrap(),
            d.from
        ),
        Err(Error::AddressNotAvailable)
    );
}
