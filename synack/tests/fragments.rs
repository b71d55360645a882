//! IP fragment reassembly at the stack (RFC 791 3.2, RFC 815, RFC 8200 4.5): a fragmented
//! SYN or data segment reaches its connection exactly as the whole packet would, in any
//! order; overlapping (RFC 5722), tiny (RFC 3128) and oversized fragments are dropped
//! and counted; an incomplete datagram is freed after `ipfrag_time` with an ICMP Time
//! Exceeded; and a flood of incomplete fragments never holds more than
//! `ipfrag_high_thresh`.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synack::wire::{
    self, IcmpRepr, IcmpVersion, Ipv4Packet, Ipv6FragmentHeader, SeqNum, TcpFlags, TcpOptions,
    TcpRepr, Timestamps,
};
use synack::{Config, Error, TcpState};

/// A harness whose stack and peer use IPv6 addresses.
fn v6(mut h: Harness) -> Harness {
    let local: IpAddr = "2001:db8::1".parse().unwrap();
    h.stack.add_address(local);
    h.local = SocketAddr::new(local, 80);
    h.peer = SocketAddr::new("2001:db8::2".parse().unwrap(), 40000);
    h
}

fn harness(config: Config, ipv6: bool) -> Harness {
    let h = Harness::new(config);
    if ipv6 {
        v6(h)
    } else {
        h
    }
}

/// The whole IP packet of a segment from the peer.
fn packet(h: &Harness, flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    packet_opts(h, flags, seq, ack, payload, TcpOptions::default())
}

fn packet_opts(
    h: &Harness,
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    payload: &[u8],
    options: TcpOptions,
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: h.peer.port(),
        dst_port: h.local.port(),
        seq: SeqNum::new(seq),
        ack: SeqNum::new(ack),
        flags,
        window: 65535,
        urgent: 0,
        options,
        payload,
    };
    wire::emit_tcp_packet(h.peer.ip(), h.local.ip(), 64, &repr).unwrap()
}

/// A SYN with every option, so its TCP header (40 bytes) is worth fragmenting, and
/// `data` (RFC 9293 3.10.7.2 allows data on a SYN).
fn full_syn(h: &Harness, seq: u32, data: &[u8]) -> Vec<u8> {
    let options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: 77,
            tsecr: 0,
        }),
        ..TcpOptions::default()
    };
    packet_opts(h, syn(), seq, 0, data, options)
}

/// Cuts for `n` fragments of `len` bytes: the first 24 bytes or more (it must hold the
/// TCP header in IPv6, RFC 8200 4.5, and no TCP fragment may start at offset 8, RFC
/// 3128), the others as even as multiples of 8 allow.
fn cuts(len: usize, n: usize) -> Vec<usize> {
    let step = (len - 24) / (n - 1) / 8 * 8;
    assert!(step >= 8, "{len} bytes do not make {n} fragments");
    (0..n - 1).map(|i| 24 + i * step).collect()
}

/// The orders to deliver `n` fragments in: as sent, reversed, and (from 3) shuffled.
fn orders(n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let in_order: Vec<usize> = (0..n).collect();
    let reversed: Vec<usize> = (0..n).rev().collect();
    if n < 3 {
        return vec![in_order, reversed];
    }
    let mut shuffled = in_order.clone();
    while shuffled == in_order || shuffled == reversed {
        shuffled.shuffle(rng);
    }
    vec![in_order, reversed, shuffled]
}

fn deliver(h: &mut Harness, frags: &[Vec<u8>], order: &[usize]) {
    for &i in order {
        h.stack.receive(h.now, &frags[i]);
    }
    h.drain_events();
}

/// The next packet the stack sends, as an ICMP message: (source, destination, type, code,
/// the quoted packet).
fn icmp_out(h: &mut Harness) -> Option<(IpAddr, IpAddr, u8, u8, Vec<u8>)> {
    let p = h.stack.poll_transmit(h.now)?;
    let (ip, body) = wire::parse_ip(&p).unwrap();
    let version = if ip.src.is_ipv4() {
        IcmpVersion::V4
    } else {
        IcmpVersion::V6
    };
    match IcmpRepr::parse(version, &ip.src, &ip.dst, body).expect("an ICMP message") {
        IcmpRepr::TimeExceeded { code, invoking } => {
            Some((ip.src, ip.dst, body[0], code, invoking.to_vec()))
        }
        other => panic!("not time exceeded: {other:?}"),
    }
}

#[test]
fn a_fragmented_syn_is_answered_exactly_as_the_whole_syn() {
    let mut rng = ChaCha8Rng::seed_from_u64(791);
    for ipv6 in [false, true] {
        // What the whole SYN gets.
        let mut whole = harness(Config::deterministic(1), ipv6);
        whole.stack.listen(whole.local, 16).unwrap();
        let syn = full_syn(&whole, 1000, &[b's'; 24]);
        whole.stack.receive(whole.now, &syn);
        let expected = whole.expect_one();
        assert!(expected.is(syn_ack()));
        for n in 2..=5 {
            for order in orders(n, &mut rng) {
                let mut h = harness(Config::deterministic(1), ipv6);
                h.stack.listen(h.local, 16).unwrap();
                let hl = if ipv6 { 40 } else { 20 };
                let frags = wire::fragment_packet(&syn, &cuts(syn.len() - hl, n), 0x1234);
                assert_eq!(frags.len(), n);
                deliver(&mut h, &frags, &order[..n - 1]);
                h.expect_none();
                assert_eq!(h.state(), None, "nothing before the last fragment");
                deliver(&mut h, &frags, &order[n - 1..]);
                assert_eq!(
                    h.expect_one(),
                    expected,
                    "v6 {ipv6}, {n} fragments, {order:?}"
                );
                assert_eq!(h.state(), Some(TcpState::SynReceived));
                let stats = h.stack.stats();
                assert_eq!((stats.fragments_in, stats.reassembled), (n as u64, 1));
                assert_eq!((stats.segments_in, stats.total_dropped()), (1, 0));
                assert_eq!(h.stack.fragment_memory(), 0);
                assert_eq!(h.stack.fragment_queues(), 0);
            }
        }
    }
}

#[test]
fn fragmented_data_reaches_an_established_connection_exactly_as_the_whole_segment() {
    let mut rng = ChaCha8Rng::seed_from_u64(815);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    for ipv6 in [false, true] {
        let mut whole = harness(plain_config(), ipv6);
        let (c, iss) = whole.established_passive(1000);
        let seg = packet(&whole, ack() | TcpFlags::PSH, 1001, iss + 1, &data);
        whole.stack.receive(whole.now, &seg);
        let expected_ack = whole.expect_one();
        let mut expected = vec![0u8; 2000];
        let n_expected = whole.stack.recv(whole.now, c, &mut expected).unwrap();
        assert_eq!(&expected[..n_expected], &data[..]);
        for n in 2..=5 {
            for order in orders(n, &mut rng) {
                let mut h = harness(plain_config(), ipv6);
                let (c, _) = h.established_passive(1000);
                let hl = if ipv6 { 40 } else { 20 };
                let frags = wire::fragment_packet(&seg, &cuts(seg.len() - hl, n), 42 + n as u32);
                deliver(&mut h, &frags, &order);
                assert_eq!(h.expect_one(), expected_ack, "v6 {ipv6}, {n}, {order:?}");
                let mut got = vec![0u8; 2000];
                let k = h.stack.recv(h.now, c, &mut got).unwrap();
                assert_eq!(&got[..k], &data[..], "v6 {ipv6}, {n}, {order:?}");
                assert_eq!(h.stack.stats().reassembled, 1);
            }
        }
    }
}

#[test]
fn overlapping_fragments_discard_the_datagram() {
    for ipv6 in [false, true] {
        let mut h = harness(plain_config(), ipv6);
        let (c, iss) = h.established_passive(1000);
        let seg = packet(&h, ack() | TcpFlags::PSH, 1001, iss + 1, &[b'a'; 200]);
        let forged = packet(&h, ack() | TcpFlags::PSH, 1001, iss + 1, &[b'X'; 200]);
        let frags = wire::fragment_packet(&seg, &[96], 7);
        // Bytes 64..160 of the forged segment: over the end of the first fragment.
        let overlap = wire::fragment_packet(&forged, &[64, 160], 7);
        h.stack.receive(h.now, &frags[0]);
        h.stack.receive(h.now, &overlap[1]);
        h.stack.receive(h.now, &frags[1]);
        h.drain_events();
        h.expect_none();
        assert_eq!(
            h.stack.recv(h.now, c, &mut [0u8; 300]),
            Err(Error::WouldBlock),
            "nothing of the datagram is delivered"
        );
        let stats = h.stack.stats();
        // The held fragment and the overlapping one, then the last fragment, which
        // arrived after the datagram was discarded.
        assert_eq!(stats.dropped("frag_overlap"), 3, "{stats:?}");
        assert_eq!((stats.reassembled, stats.fragments_in), (0, 3));
        // Even the forged datagram, complete, cannot come back under that identification
        // until the discarded one times out.
        for f in &overlap {
            h.stack.receive(h.now, f);
        }
        assert_eq!(h.stack.stats().dropped("frag_overlap"), 6);
        h.expect_none();
        // The segment sent again whole is taken.
        h.stack.receive(h.now, &seg);
        let a = h.expect_one();
        assert_eq!(a.ack, 1201);
        let mut buf = [0u8; 300];
        let n = h.stack.recv(h.now, c, &mut buf).unwrap();
        assert_eq!(&buf[..n], &[b'a'; 200][..]);
        // The discarded datagram's marker goes when its time is up, silently.
        let time = if ipv6 { 60 } else { 30 };
        h.advance(Duration::from_secs(time));
        assert_eq!(h.stack.fragment_queues(), 0);
        assert_eq!(h.stack.stats().dropped("frag_timeout"), 0);
    }
}

#[test]
fn an_incomplete_datagram_is_freed_after_ipfrag_time_with_icmp_time_exceeded() {
    for ipv6 in [false, true] {
        let mut h = harness(plain_config(), ipv6);
        h.stack.listen(h.local, 16).unwrap();
        let syn = full_syn(&h, 1000, &[]);
        let hl = if ipv6 { 40 } else { 20 };
        let frags = wire::fragment_packet(&syn, &cuts(syn.len() - hl, 3), 99);
        h.stack.receive(h.now, &frags[0]);
        h.stack.receive(h.now, &frags[2]);
        assert!(h.stack.fragment_memory() > 0);
        let time = Duration::from_secs(if ipv6 { 60 } else { 30 });
        assert_eq!(h.stack.poll_timeout(), Some(h.now + time));
        h.advance(time - Duration::from_millis(1));
        assert_eq!(h.stack.fragment_queues(), 1, "not yet");
        assert!(h.stack.poll_transmit(h.now).is_none());
        h.advance(Duration::from_millis(1));
        assert_eq!(
            (h.stack.fragment_queues(), h.stack.fragment_memory()),
            (0, 0)
        );
        let stats = h.stack.stats();
        assert_eq!(stats.dropped("frag_timeout"), 2);
        assert_eq!(stats.icmp_time_exceeded, 1);
        // RFC 792 / RFC 4443 3.3: Time Exceeded, code 1, quoting the first fragment.
        let (src, dst, msg_type, code, quote) = icmp_out(&mut h).expect("time exceeded");
        assert_eq!((src, dst), (h.local.ip(), h.peer.ip()));
        assert_eq!((msg_type, code), (if ipv6 { 3 } else { 11 }, 1));
        assert_eq!(quote, frags[0]);
        assert!(h.stack.poll_transmit(h.now).is_none());
        // The late fragment starts a new datagram; no connection was made.
        h.stack.receive(h.now, &frags[1]);
        assert_eq!(h.state(), None);
        assert_eq!(h.stack.fragment_queues(), 1);
    }
}

#[test]
fn without_its_first_fragment_a_timed_out_datagram_sends_no_icmp() {
    let mut h = Harness::plain();
    let seg = packet(&h, ack(), 1, 1, &[0; 100]);
    let frags = wire::fragment_packet(&seg, &[32, 64], 5);
    h.stack.receive(h.now, &frags[1]);
    h.stack.receive(h.now, &frags[2]);
    h.advance(Duration::from_secs(30));
    assert_eq!(h.stack.stats().dropped("frag_timeout"), 2);
    assert!(h.stack.poll_transmit(h.now).is_none());
}

#[test]
fn a_flood_of_incomplete_fragments_stays_within_ipfrag_high_thresh() {
    let mut h = Harness::plain();
    let thresh = h.stack.config().ipfrag_high_thresh;
    assert_eq!(thresh, 4 * 1024 * 1024);
    let mut rng = ChaCha8Rng::seed_from_u64(5722);
    let template = packet(&h, ack(), 1, 1, &[0xee; 1480]);
    let flood = 100_000u32;
    let mut peak = 0;
    for i in 0..flood {
        // A fragment of 8 to 1480 bytes, somewhere in a datagram that never completes:
        // one in ten is a first fragment, the rest have more to come.
        let len = 8 * (1 + rng.random::<u32>() as usize % 185);
        let first = i % 10 == 0;
        let offset = if first {
            0
        } else {
            16 + 8 * (rng.random::<u32>() as usize % 4000)
        };
        let mut f = template[..20 + len].to_vec();
        let src = Ipv4Addr::from(0x0a00_0000 | (rng.random::<u32>() & 0x00ff_ffff));
        let mut p = Ipv4Packet::new_unchecked(&mut f[..]);
        p.set_addrs(src, Ipv4Addr::new(198, 18, 0, 1));
        p.set_ident(i as u16);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.set_frag_offset(offset as u16);
        p.set_total_len((20 + len) as u16);
        p.fill_checksum();
        h.stack.receive(h.now, &f);
        let held = h.stack.fragment_memory();
        assert!(held <= thresh, "{held} bytes held after {i} fragments");
        peak = peak.max(held);
        if i % 1000 == 0 {
            h.now += Duration::from_millis(1);
        }
    }
    let stats = h.stack.stats();
    assert_eq!(stats.fragments_in, u64::from(flood));
    assert!(stats.dropped("frag_memory_limit") > 50_000, "{stats:?}");
    assert!(peak > thresh - 2048, "the pool filled up: {peak}");
    assert_eq!(stats.reassembled, 0);
    // Unfragmented traffic is untouched: a connection opens and carries data.
    let (c, iss) = h.established_passive(1000);
    h.inject(ack() | TcpFlags::PSH, 1001, iss + 1, 65535, b"still works");
    assert_eq!(h.expect_one().ack, 1012);
    let mut buf = [0u8; 64];
    let n = h.stack.recv(h.now, c, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"still works");
    // Once the flood has timed out, the memory is back and fragments are reassembled.
    h.advance(Duration::from_secs(31));
    assert_eq!(
        (h.stack.fragment_memory(), h.stack.fragment_queues()),
        (0, 0)
    );
    let held = stats.fragments_in - stats.total_dropped();
    assert_eq!(h.stack.stats().dropped("frag_timeout"), held);
    // The first fragments that were held get their Time Exceeded (those the control
    // queue had room for).
    let mut icmp = 0;
    while let Some((src, _, 11, 1, _)) = icmp_out(&mut h) {
        assert_eq!(src, h.local.ip());
        icmp += 1;
    }
    assert!(icmp > 0);
    assert_eq!(icmp, h.stack.stats().icmp_time_exceeded);
    let seg = packet(&h, ack() | TcpFlags::PSH, 1012, iss + 1, &[b'z'; 100]);
    for f in wire::fragment_packet(&seg, &[48, 96], 1) {
        h.stack.receive(h.now, &f);
    }
    assert_eq!(h.expect_one().ack, 1112);
    let n = h.stack.recv(h.now, c, &mut [0u8; 200]).unwrap();
    assert_eq!(n, 100);
}

#[test]
fn a_tcp_fragment_at_offset_8_is_dropped() {
    for ipv6 in [false, true] {
        let mut h = harness(plain_config(), ipv6);
        h.stack.listen(h.local, 16).unwrap();
        let syn = full_syn(&h, 1000, &[]);
        // RFC 3128: the second fragment would start at offset 8 (FO = 1), inside the TCP
        // header, where it could rewrite the flags.
        let frags = wire::fragment_packet(&syn, &[8], 3);
        for f in &frags {
            h.stack.receive(h.now, f);
        }
        h.expect_none();
        let stats = h.stack.stats();
        assert_eq!(
            stats.dropped("frag_tiny"),
            if ipv6 { 2 } else { 1 },
            "{stats:?}"
        );
        assert_eq!(stats.reassembled, 0);
        assert_eq!(h.state(), None);
    }
}

#[test]
fn a_fragment_beyond_65535_bytes_is_dropped() {
    for ipv6 in [false, true] {
        let mut h = harness(plain_config(), ipv6);
        let seg = packet(&h, ack(), 1, 1, &[0; 64]);
        let mut last = wire::fragment_packet(&seg, &[40], 8).pop().unwrap();
        // Move the last fragment (44 bytes) to offset 65528: it would end at 65572.
        if ipv6 {
            let mut fh = Ipv6FragmentHeader::new_unchecked(&mut last[40..48]);
            fh.set_frag_offset(65528);
        } else {
            let mut p = Ipv4Packet::new_unchecked(&mut last[..]);
            p.set_frag_offset(65528);
            p.fill_checksum();
        }
        h.stack.receive(h.now, &last);
        assert_eq!(h.stack.stats().dropped("frag_too_big"), 1);
        assert_eq!(h.stack.fragment_queues(), 0);
    }
}

#[test]
fn a_fragmented_ping_is_answered() {
    for ipv6 in [false, true] {
        let mut h = harness(plain_config(), ipv6);
        let data: Vec<u8> = (0..600u16).map(|i| i as u8).collect();
        let req = IcmpRepr::EchoRequest {
            ident: 7,
            seq: 1,
            data: &data,
        };
        let p = wire::emit_icmp_packet(h.peer.ip(), h.local.ip(), 64, &req).unwrap();
        let frags = wire::fragment_packet(&p, &[8, 200, 400], 77);
        for f in frags.iter().rev() {
            h.stack.receive(h.now, f);
        }
        let reply = h.stack.poll_transmit(h.now).expect("an echo reply");
        let (ip, body) = wire::parse_ip(&reply).unwrap();
        let version = if ipv6 {
            IcmpVersion::V6
        } else {
            IcmpVersion::V4
        };
        assert_eq!(
            IcmpRepr::parse(version, &ip.src, &ip.dst, body).unwrap(),
            IcmpRepr::EchoReply {
                ident: 7,
                seq: 1,
                data: &data
            }
        );
    }
}
