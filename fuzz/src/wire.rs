//! `wire_ip`: the wire parsers on arbitrary bytes, and emit/parse round trips.
//!
//! Each input is parsed twice: as it is (so malformed headers, bad lengths and bad
//! checksums are exercised), and with its IPv4 header checksum and its TCP, ICMP or
//! ICMPv6 checksum recomputed (so the fuzzer gets past the checksums to the header
//! fields and options behind them). Whatever parses is emitted again with synack's
//! emitters and parsed back: the fields must survive, as far as the emitter's canonical
//! layout keeps them (see [`canonical_options`]), and emitting what was parsed back
//! must give the same bytes again. The input is also given to the TCP options parser
//! as an option area.

use std::net::IpAddr;

use synack::wire::icmp::{PROTO_ICMP, PROTO_ICMPV6};
use synack::wire::{
    self, checksum, finish, pseudo_header, sum, IcmpRepr, IcmpVersion, IpInfo, Ipv4Packet,
    Ipv6Packet, QuotedTcp, TcpOptions, TcpPacket, TcpRepr, PROTO_TCP,
};

/// Longest TCP option area.
const MAX_OPTIONS_LEN: usize = 40;

/// The `wire_ip` target.
pub fn run(data: &[u8]) {
    check_packet(data);
    let mut fixed = data.to_vec();
    if fix_checksums(&mut fixed) && fixed != data {
        check_packet(&fixed);
    }
    check_options(&data[..data.len().min(2 * MAX_OPTIONS_LEN)]);
}

/// Parse one packet as the stack does, then round-trip whatever parsed.
fn check_packet(p: &[u8]) {
    // The typed views never panic on any bytes, checked or not.
    if let Ok(v4) = Ipv4Packet::new_checked(p) {
        let _ = (v4.dscp_ecn(), v4.ident(), v4.dont_frag(), v4.checksum());
        assert!(v4.header_len() >= 20 && v4.total_len() as usize <= p.len());
        let _ = v4.payload();
    }
    if let Ok(v6) = Ipv6Packet::new_checked(p) {
        let _ = (v6.traffic_class(), v6.flow_label(), v6.payload());
        if let Ok((_, upper)) = v6.upper_layer() {
            assert!(upper.len() <= v6.payload().len());
        }
    }
    let parsed = wire::parse_ip(p);
    let whole = wire::parse_tcp_packet(p);
    let (ip, payload) = match parsed {
        Ok(x) => x,
        Err(e) => {
            assert_eq!(
                whole.err(),
                Some(e),
                "parse_tcp_packet disagrees with parse_ip"
            );
            return;
        }
    };
    assert_eq!(ip.src.is_ipv4(), p[0] >> 4 == 4, "address family of {ip:?}");
    assert_eq!(ip.src.is_ipv4(), ip.dst.is_ipv4());
    assert!(payload.len() <= p.len());
    match ip.protocol {
        PROTO_TCP => {
            let seg = wire::parse_tcp(&ip, payload);
            match (&seg, &whole) {
                (Ok(a), Ok((ip2, b))) => assert!(a == b && *ip2 == ip),
                (Err(a), Err(b)) => assert_eq!(a, b),
                _ => panic!("parse_tcp_packet disagrees with parse_ip + parse_tcp"),
            }
            if let Ok(seg) = seg {
                tcp_round_trip(&ip, payload, &seg);
            }
        }
        PROTO_ICMP if ip.src.is_ipv4() => icmp_round_trip(IcmpVersion::V4, &ip, payload),
        PROTO_ICMPV6 if ip.src.is_ipv6() => icmp_round_trip(IcmpVersion::V6, &ip, payload),
        other => assert_eq!(
            whole.err(),
            Some(wire::WireError::UnsupportedProtocol(other))
        ),
    }
}

fn tcp_round_trip(ip: &IpInfo, bytes: &[u8], seg: &TcpRepr<'_>) {
    let view = TcpPacket::new_checked(bytes).expect("a parsed segment has a valid header");
    assert_eq!(
        (view.src_port(), view.dst_port(), view.seq_number()),
        (seg.src_port, seg.dst_port, seg.seq)
    );
    assert_eq!((view.flags(), view.window_len()), (seg.flags, seg.window));
    assert_eq!(view.payload(), seg.payload);
    if !seg.flags.ack() {
        assert_eq!(seg.ack.get(), 0, "ACK clear: the ack field reads as 0");
    }
    assert!(seg.header_len() <= 60 && seg.header_len().is_multiple_of(4));
    assert_eq!(
        seg.seg_len() as usize,
        seg.payload.len() + seg.flags.syn() as usize + seg.flags.fin() as usize
    );
    let out = match wire::emit_tcp_packet(ip.src, ip.dst, ip.ttl, seg) {
        Ok(out) => out,
        Err(e) => {
            // Only a segment too long for one IPv4/IPv6 packet may fail to emit.
            assert!(seg.buffer_len() > 65_000, "emitting {seg:?} failed: {e:?}");
            return;
        }
    };
    let (ip2, back) = wire::parse_tcp_packet(&out).expect("an emitted segment parses");
    assert_eq!(
        (ip2.src, ip2.dst, ip2.protocol, ip2.ttl),
        (ip.src, ip.dst, PROTO_TCP, ip.ttl)
    );
    let want = TcpRepr {
        options: canonical_options(&seg.options, seg.flags.syn()),
        ..seg.clone()
    };
    assert_eq!(back, want, "emit then parse changed the segment");
    let again = wire::emit_tcp_packet(ip.src, ip.dst, ip.ttl, &back).unwrap();
    assert_eq!(again, out, "emission is not canonical");
}

/// What of `o` the emitter writes: an MD5 signature first, MSS, window scale,
/// SACK-permitted and Fast Open (when it fits) only on a SYN, timestamps always, and as
/// many SACK blocks as the remaining option space holds.
pub fn canonical_options(o: &TcpOptions, syn: bool) -> TcpOptions {
    let mut c = TcpOptions {
        timestamps: o.timestamps,
        md5: o.md5,
        ..TcpOptions::default()
    };
    if syn {
        c.mss = o.mss;
        c.window_scale = o.window_scale;
        c.sack_permitted = o.sack_permitted;
        let without = c.emitted_len(syn);
        c.fast_open = o.fast_open;
        if c.emitted_len(syn) == without {
            c.fast_open = None;
        }
    }
    let room = (MAX_OPTIONS_LEN - c.emitted_len(syn)).saturating_sub(4) / 8;
    for b in o.sack_blocks.iter().take(room) {
        c.sack_blocks.push(*b);
    }
    c
}

fn icmp_round_trip(version: IcmpVersion, ip: &IpInfo, bytes: &[u8]) {
    let Ok(repr) = IcmpRepr::parse(version, &ip.src, &ip.dst, bytes) else {
        return;
    };
    match repr {
        IcmpRepr::DestUnreachable { invoking, .. }
        | IcmpRepr::PacketTooBig { invoking, .. }
        | IcmpRepr::TimeExceeded { invoking, .. }
        | IcmpRepr::ParamProblem { invoking, .. } => {
            if let Some(q) = QuotedTcp::parse(invoking) {
                assert_eq!(q.src.is_ipv4(), invoking[0] >> 4 == 4);
                assert_eq!(q.src.is_ipv4(), q.dst.is_ipv4());
            }
        }
        IcmpRepr::EchoRequest { .. } | IcmpRepr::EchoReply { .. } | IcmpRepr::Other { .. } => {}
        // A message newer than this target quotes nothing it checks; the round trip
        // below still checks it.
        _ => {}
    }
    let out = match wire::emit_icmp_packet(ip.src, ip.dst, ip.ttl, &repr) {
        Ok(out) => out,
        Err(e) => {
            assert!(
                repr.buffer_len() > 65_000,
                "emitting {repr:?} failed: {e:?}"
            );
            return;
        }
    };
    let (ip2, body) = wire::parse_ip(&out).expect("an emitted ICMP packet parses");
    assert_eq!((ip2.src, ip2.dst, ip2.ttl), (ip.src, ip.dst, ip.ttl));
    let back = IcmpRepr::parse(version, &ip2.src, &ip2.dst, body).expect("emitted ICMP parses");
    assert_eq!(back, repr, "ICMP emit then parse changed the message");
}

/// The option parser on an arbitrary option area; what parses is emitted in both the
/// SYN and the non-SYN layout and parsed back.
fn check_options(area: &[u8]) {
    let Ok(o) = TcpOptions::parse(area) else {
        return;
    };
    assert!(o.sack_blocks.len() <= 4);
    for syn in [true, false] {
        let n = o.emitted_len(syn);
        assert!(
            n <= MAX_OPTIONS_LEN && n.is_multiple_of(4),
            "emitted_len {n}"
        );
        let mut buf = vec![0u8; n];
        o.emit(&mut buf, syn).expect("emit into emitted_len bytes");
        let back = TcpOptions::parse(&buf).expect("emitted options parse");
        assert_eq!(
            back,
            canonical_options(&o, syn),
            "options round trip (syn {syn})"
        );
    }
}

/// Recompute the IPv4 header checksum and the TCP, ICMP or ICMPv6 checksum wherever the
/// lengths allow. False when not even the IP header could be fixed.
pub fn fix_checksums(p: &mut [u8]) -> bool {
    match p.first().map(|b| b >> 4) {
        Some(4) => {
            if p.len() < 20 {
                return false;
            }
            let hl = usize::from(p[0] & 0x0f) * 4;
            if hl < 20 || hl > p.len() {
                return false;
            }
            p[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&p[..hl]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if total >= hl && total <= p.len() {
                let src = IpAddr::from([p[12], p[13], p[14], p[15]]);
                let dst = IpAddr::from([p[16], p[17], p[18], p[19]]);
                let proto = p[9];
                fix_upper(proto, &src, &dst, &mut p[hl..total]);
            }
            true
        }
        Some(6) => {
            let Ok(v6) = Ipv6Packet::new_checked(&*p) else {
                return false;
            };
            let (src, dst) = (IpAddr::from(v6.src_addr()), IpAddr::from(v6.dst_addr()));
            let Ok((proto, range)) = v6.upper_layer_range() else {
                return false;
            };
            fix_upper(proto, &src, &dst, &mut p[range]);
            true
        }
        _ => false,
    }
}

fn fix_upper(proto: u8, src: &IpAddr, dst: &IpAddr, b: &mut [u8]) {
    let (at, acc) = match proto {
        PROTO_TCP if b.len() >= 20 => (16, pseudo_header(src, dst, PROTO_TCP, b.len() as u32)),
        PROTO_ICMP if src.is_ipv4() && b.len() >= 8 => (2, 0),
        PROTO_ICMPV6 if src.is_ipv6() && b.len() >= 8 => {
            (2, pseudo_header(src, dst, PROTO_ICMPV6, b.len() as u32))
        }
        _ => return,
    };
    b[at..at + 2].copy_from_slice(&[0, 0]);
    let c = finish(sum(acc, b));
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
}
