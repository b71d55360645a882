//! Bad input: thousands of random and mutated packets fed to a stack with a listener and
//! an established connection. Nothing panics, every packet is either taken as a valid
//! segment, taken into fragment reassembly, or counted as dropped under a reason, and
//! the connection keeps working.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};
use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, Instant, Stack};

fn sample_packets() -> Vec<Vec<u8>> {
    let (a, b) = ("198.18.0.2".parse().unwrap(), "198.18.0.1".parse().unwrap());
    let ts = Some(Timestamps { tsval: 5, tsecr: 6 });
    let mk = |flags, payload: &'static [u8], options| {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum::new(1000),
            ack: SeqNum::new(2000),
            flags,
            window: 512,
            urgent: 0,
            options,
            payload,
        };
        wire::emit_tcp_packet(a, b, 64, &repr).unwrap()
    };
    let mut v = vec![
        mk(
            TcpFlags::SYN,
            b"",
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: ts,
                ..TcpOptions::default()
            },
        ),
        mk(
            TcpFlags::ACK | TcpFlags::PSH,
            b"hello world",
            TcpOptions {
                timestamps: ts,
                ..TcpOptions::default()
            },
        ),
        mk(TcpFlags::FIN | TcpFlags::ACK, b"", TcpOptions::default()),
        mk(TcpFlags::RST, b"", TcpOptions::default()),
    ];
    let (a6, b6) = (
        "2001:db8::2".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    );
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum::new(1),
        ack: SeqNum::new(0),
        flags: TcpFlags::SYN,
        window: 100,
        urgent: 0,
        options: TcpOptions::default(),
        payload: b"",
    };
    v.push(wire::emit_tcp_packet(a6, b6, 64, &repr).unwrap());
    // Fragments: the first 24 bytes of the SYN above, over IPv4 and over IPv6.
    let mut f4 = v[0][..44].to_vec();
    let mut p = wire::Ipv4Packet::new_unchecked(&mut f4[..]);
    p.set_total_len(44);
    p.set_dont_frag(false);
    p.set_more_frags(true);
    p.set_ident(9);
    p.fill_checksum();
    v.push(f4);
    let syn6 = v[4].clone();
    let mut f6 = syn6[..40].to_vec();
    f6[6] = wire::ipv6::NEXT_HEADER_FRAGMENT;
    f6[4..6].copy_from_slice(&32u16.to_be_bytes());
    f6.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 9]);
    f6.extend_from_slice(&syn6[40..60]);
    f6.extend_from_slice(&[0; 4]);
    v.push(f6);
    v
}

fn target() -> Stack {
    let mut s = Stack::new(Config::deterministic(1));
    s.add_address("198.18.0.1".parse().unwrap());
    s.add_address("2001:db8::1".parse().unwrap());
    s.listen(SocketAddr::new("0.0.0.0".parse().unwrap(), 80), 8)
        .unwrap();
    s.listen(SocketAddr::new("::".parse().unwrap(), 80), 8)
        .unwrap();
    s
}

/// Feed one packet; it must be accounted for: a parsed segment, a fragment taken into
/// reassembly, or a counted drop. Reassembly never holds more than its limit.
fn feed(stack: &mut Stack, now: Instant, packet: &[u8]) {
    let before = stack.stats();
    stack.receive(now, packet);
    let after = stack.stats();
    let taken = after.segments_in > before.segments_in
        || after.fragments_in > before.fragments_in
        || after.icmp_in > before.icmp_in;
    let dropped = after.total_dropped() > before.total_dropped();
    assert!(
        taken || dropped,
        "packet neither taken nor counted as dropped: {packet:02x?}"
    );
    assert!(stack.fragment_memory() <= stack.config().ipfrag_high_thresh);
    stack.on_timeout(now);
    while stack.poll_transmit(now).is_some() {}
    while stack.poll_event().is_some() {}
}

#[test]
fn random_bytes_never_panic_and_are_counted() {
    let stack = RefCell::new(target());
    let t = Cell::new(0u64);
    let mut runner = TestRunner::new(PtConfig {
        cases: 5000,
        ..PtConfig::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..120), |bytes| {
            t.set(t.get() + 1000);
            feed(
                &mut stack.borrow_mut(),
                Instant::from_micros(t.get()),
                &bytes,
            );
            Ok(())
        })
        .unwrap();
    assert!(stack.borrow().stats().total_dropped() > 0);
}

#[test]
fn mutated_valid_packets_never_panic_and_are_counted() {
    let samples = sample_packets();
    let stack = RefCell::new(target());
    let t = Cell::new(0u64);
    let mut runner = TestRunner::new(PtConfig {
        cases: 5000,
        ..PtConfig::default()
    });
    let edits = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4);
    let strategy = (
        0..samples.len(),
        edits,
        any::<prop::sample::Index>(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(which, edits, cut, truncate)| {
            let mut p = samples[which].clone();
            for (i, v) in edits {
                let i = i.index(p.len());
                p[i] = v;
            }
            if truncate {
                p.truncate(cut.index(p.len() + 1));
            }
            t.set(t.get() + 1000);
            feed(&mut stack.borrow_mut(), Instant::from_micros(t.get()), &p);
            Ok(())
        })
        .unwrap();
    let stats = stack.borrow().stats();
    assert!(
        stats.dropped("bad_tcp_checksum") + stats.dropped("bad_ip_checksum") > 0,
        "{stats:?}"
    );
}
