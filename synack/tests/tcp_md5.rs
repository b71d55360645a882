//! TCP-MD5 signatures (RFC 2385) between two stacks, as Linux keeps them: with the same
//! key two stacks connect and transfer, every segment signed; with different keys they
//! never connect and the drops are counted (Linux's TCPMD5FAILURE); an unsigned segment
//! where a key applies is dropped (TCPMD5NOTFOUND), a signed one where none does too
//! (TCPMD5UNEXPECTED).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr};
use synack::{Config, Instant, Md5Key, Stack, TcpState};

const CLIENT: &str = "198.18.0.1";
const SERVER: &str = "198.18.0.2";

fn stack(addr: &str) -> Stack {
    let mut s = Stack::new(Config::deterministic(7));
    s.add_address(addr.parse().unwrap());
    s
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Move packets both ways until both stacks are quiet; with `check`, every packet is
/// checked on the way: its checksum holds and it carries the digest under that key.
fn pump(now: Instant, a: &mut Stack, b: &mut Stack, check: Option<&[u8]>) -> usize {
    let mut moved = 0;
    loop {
        let n = carry(now, a, b, check) + carry(now, b, a, check);
        if n == 0 {
            return moved;
        }
        moved += n;
    }
}

fn carry(now: Instant, from: &mut Stack, to: &mut Stack, check: Option<&[u8]>) -> usize {
    let mut moved = 0;
    while let Some(p) = from.poll_transmit(now) {
        let (info, seg) = wire::parse_tcp_packet(&p).expect("a well-formed packet");
        if let Some(key) = check {
            let ip_len = if info.src.is_ipv4() { 20 } else { 40 };
            let want = wire::tcp_md5_digest(&info.src, &info.dst, &p[ip_len..], key);
            assert_eq!(seg.options.md5, want, "{} signed", seg.flags);
        }
        to.receive(now, &p);
        moved += 1;
    }
    moved
}

fn pair(
    client_key: Option<&[u8]>,
    server_key: Option<&[u8]>,
) -> (
    Stack,
    Stack,
    synack::ConnectionHandle,
    synack::ListenerHandle,
) {
    let (mut client, mut server) = (stack(CLIENT), stack(SERVER));
    let now = Instant::ZERO;
    let listener = server
        .listen(format!("{SERVER}:179").parse().unwrap(), 16)
        .unwrap();
    if let Some(k) = server_key {
        server
            .set_listener_md5_key(listener, Md5Key::new(ip(CLIENT), None, k).unwrap())
            .unwrap();
    }
    let conn = client
        .connect(now, format!("{SERVER}:179").parse().unwrap())
        .unwrap();
    if let Some(k) = client_key {
        client
            .set_md5_key(now, conn, Md5Key::new(ip(SERVER), None, k).unwrap())
            .unwrap();
    }
    (client, server, conn, listener)
}

#[test]
fn two_stacks_with_the_same_key_connect_and_transfer_every_segment_signed() {
    let key: &[u8] = b"a BGP session's shared secret";
    let (mut client, mut server, conn, listener) = pair(Some(key), Some(key));
    let mut now = Instant::ZERO;
    pump(now, &mut client, &mut server, Some(key));
    assert_eq!(client.state(conn).unwrap(), TcpState::Established);
    let accepted = server.accept(listener).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < data.len() {
        if sent < data.len() {
            sent += client.send(now, conn, &data[sent..]).unwrap_or(0);
        }
        pump(now, &mut client, &mut server, Some(key));
        while let Ok(n) = server.recv(now, accepted, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        now += Duration::from_millis(10);
        if let Some(t) = client.poll_timeout().filter(|t| *t <= now) {
            client.on_timeout(t);
        }
    }
    assert_eq!(got, data);
    // The option's 20 bytes come off the MSS: full segments still fit the MTU.
    let info = client.info(now, conn).unwrap();
    assert_eq!(info.snd_mss, 1460 - 20);
    // A close, and the TIME_WAIT ACK, signed too.
    client.close(now, conn).unwrap();
    server.close(now, accepted).unwrap();
    pump(now, &mut client, &mut server, Some(key));
    assert_eq!(
        client.stats().total_dropped(),
        0,
        "{:?}",
        client.stats().drops
    );
    assert_eq!(
        server.stats().total_dropped(),
        0,
        "{:?}",
        server.stats().drops
    );
}

#[test]
fn a_signed_syn_offers_no_timestamps() {
    let key: &[u8] = b"k";
    let (mut client, _server, _conn, _) = pair(Some(key), Some(key));
    let syn = client.poll_transmit(Instant::ZERO).unwrap();
    let (_, seg) = wire::parse_tcp_packet(&syn).unwrap();
    // Linux's tcp_syn_options: no timestamps beside an MD5 option.
    assert!(seg.options.md5.is_some());
    assert_eq!(seg.options.timestamps, None);
    assert!(seg.options.sack_permitted);
}

/// A SYN to `server`'s port 179 from 198.18.0.1:40000 with these options, signed with `key`.
fn signed_syn(options: TcpOptions, key: &[u8]) -> Vec<u8> {
    let mut options = options;
    options.md5 = Some([0; 16]);
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 179,
        seq: SeqNum::new(1000),
        ack: SeqNum::new(0),
        flags: TcpFlags::SYN,
        window: 65535,
        urgent: 0,
        options,
        payload: b"",
    };
    let mut p = wire::emit_tcp_packet(ip(CLIENT), ip(SERVER), 64, &syn).unwrap();
    wire::sign_tcp_md5(
        &mut p[20..],
        &ip(CLIENT),
        &ip(SERVER),
        key,
        wire::TxChecksum::Full,
    )
    .unwrap();
    p
}

#[test]
fn a_signed_syn_ack_leaves_timestamps_out_only_beside_sack_permitted() {
    // Linux's tcp_synack_options: MD5 and timestamps leave no room for SACK blocks, so
    // a SYN-ACK that grants SACK-permitted leaves timestamps out.
    let ts = Some(wire::Timestamps { tsval: 5, tsecr: 0 });
    for sack in [true, false] {
        let mut server = stack(SERVER);
        let listener = server
            .listen(format!("{SERVER}:179").parse().unwrap(), 4)
            .unwrap();
        server
            .set_listener_md5_key(listener, Md5Key::new(ip(CLIENT), None, b"k").unwrap())
            .unwrap();
        let options = TcpOptions {
            mss: Some(1460),
            sack_permitted: sack,
            window_scale: Some(7),
            timestamps: ts,
            ..TcpOptions::default()
        };
        server.receive(Instant::ZERO, &signed_syn(options, b"k"));
        let synack = server.poll_transmit(Instant::ZERO).expect("a SYN-ACK");
        let (_, seg) = wire::parse_tcp_packet(&synack).unwrap();
        assert_eq!(seg.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert!(seg.options.md5.is_some());
        assert_eq!(seg.options.sack_permitted, sack);
        assert_eq!(seg.options.timestamps.is_some(), !sack, "sack {sack}");
    }
}

#[test]
fn stacks_with_different_keys_never_connect_and_count_the_failures() {
    let (mut client, mut server, conn, _) = pair(Some(b"one"), Some(b"two"));
    let mut now = Instant::ZERO;
    for _ in 0..5 {
        pump(now, &mut client, &mut server, None);
        now += Duration::from_secs(2);
        client.on_timeout(now);
    }
    assert_eq!(client.state(conn).unwrap(), TcpState::SynSent);
    assert!(server.stats().dropped("md5_failure") >= 3);
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn a_listener_with_a_key_drops_an_unsigned_syn_and_one_without_drops_a_signed_one() {
    // The server has a key for the client; the client signs nothing.
    let (mut client, mut server, conn, _) = pair(None, Some(b"secret"));
    pump(Instant::ZERO, &mut client, &mut server, None);
    assert_eq!(client.state(conn).unwrap(), TcpState::SynSent);
    assert_eq!(server.stats().dropped("md5_not_found"), 1);
    // The client signs; the server has no key.
    let (mut client, mut server, conn, _) = pair(Some(b"secret"), None);
    pump(Instant::ZERO, &mut client, &mut server, None);
    assert_eq!(client.state(conn).unwrap(), TcpState::SynSent);
    assert_eq!(server.stats().dropped("md5_unexpected"), 1);
}

#[test]
fn an_unsigned_segment_on_a_signed_connection_is_dropped() {
    let key: &[u8] = b"secret";
    let (mut client, mut server, conn, listener) = pair(Some(key), Some(key));
    let now = Instant::ZERO;
    pump(now, &mut client, &mut server, Some(key));
    let accepted = server.accept(listener).unwrap();
    // A forged data segment in the window, without the option: dropped, not delivered.
    let local: SocketAddr = client.local_addr(conn).unwrap();
    client.send(now, conn, b"x").unwrap();
    let real = client.poll_transmit(now).unwrap();
    let (_, seg) = wire::parse_tcp_packet(&real).unwrap();
    let forged = TcpRepr {
        src_port: local.port(),
        dst_port: 179,
        seq: seg.seq,
        ack: seg.ack,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: seg.window,
        urgent: 0,
        options: TcpOptions::default(),
        payload: b"evil",
    };
    let p = wire::emit_tcp_packet(ip(CLIENT), ip(SERVER), 64, &forged).unwrap();
    server.receive(now, &p);
    assert_eq!(server.stats().dropped("md5_not_found"), 1);
    assert_eq!(server.recv_queue(accepted).unwrap(), 0);
    // The same with a wrong digest.
    let mut bad = forged.clone();
    bad.options.md5 = Some([0xaa; 16]);
    let p = wire::emit_tcp_packet(ip(CLIENT), ip(SERVER), 64, &bad).unwrap();
    server.receive(now, &p);
    assert_eq!(server.stats().dropped("md5_failure"), 1);
    // The real one goes in.
    server.receive(now, &real);
    assert_eq!(server.recv_queue(accepted).unwrap(), 1);
}

#[test]
fn a_key_for_a_prefix_covers_its_peers_and_the_longest_prefix_wins() {
    let (mut client, mut server) = (stack(CLIENT), stack(SERVER));
    let now = Instant::ZERO;
    let listener = server
        .listen(format!("{SERVER}:179").parse().unwrap(), 16)
        .unwrap();
    server
        .set_listener_md5_key(
            listener,
            Md5Key::new(ip("198.18.0.0"), Some(15), b"wide").unwrap(),
        )
        .unwrap();
    server
        .set_listener_md5_key(
            listener,
            Md5Key::new(ip("198.18.0.0"), Some(24), b"narrow").unwrap(),
        )
        .unwrap();
    let conn = client
        .connect(now, format!("{SERVER}:179").parse().unwrap())
        .unwrap();
    client
        .set_md5_key(now, conn, Md5Key::new(ip(SERVER), None, b"narrow").unwrap())
        .unwrap();
    pump(now, &mut client, &mut server, Some(b"narrow"));
    assert_eq!(client.state(conn).unwrap(), TcpState::Established);
    // Removing a key that is not there is EINVAL; removing the narrow one leaves the wide.
    assert!(server
        .remove_listener_md5_key(listener, ip("198.18.0.0"), Some(16))
        .is_err());
    server
        .remove_listener_md5_key(listener, ip("198.18.0.0"), Some(24))
        .unwrap();
}

#[test]
fn ipv6_peers_sign_and_connect_too() {
    let mut client = Stack::new(Config::deterministic(3));
    client.add_address(ip("2001:db8::1"));
    let mut server = Stack::new(Config::deterministic(4));
    server.add_address(ip("2001:db8::2"));
    let now = Instant::ZERO;
    let listener = server
        .listen("[2001:db8::2]:179".parse().unwrap(), 4)
        .unwrap();
    server
        .set_listener_md5_key(
            listener,
            Md5Key::new(ip("2001:db8::"), Some(32), b"v6").unwrap(),
        )
        .unwrap();
    let conn = client
        .connect(now, "[2001:db8::2]:179".parse().unwrap())
        .unwrap();
    client
        .set_md5_key(
            now,
            conn,
            Md5Key::new(ip("2001:db8::2"), None, b"v6").unwrap(),
        )
        .unwrap();
    pump(now, &mut client, &mut server, Some(b"v6"));
    assert_eq!(client.state(conn).unwrap(), TcpState::Established);
}

#[test]
fn a_decide_first_listener_gives_its_key_to_the_connections_it_accepts() {
    let key: &[u8] = b"decided";
    let (mut client, mut server, conn, listener) = pair(Some(key), Some(key));
    let mut options = synack::ListenerOptions::default();
    options.decide = Some(synack::Decide::default());
    server.set_listener_options(listener, options).unwrap();
    let now = Instant::ZERO;
    pump(now, &mut client, &mut server, Some(key));
    let request = server.take_request(listener).expect("the SYN is held");
    server.accept_request(now, request.handle).unwrap();
    pump(now, &mut client, &mut server, Some(key));
    assert_eq!(client.state(conn).unwrap(), TcpState::Established);
    assert_eq!(
        server.stats().total_dropped(),
        0,
        "{:?}",
        server.stats().drops
    );
}

#[test]
fn a_signed_segment_for_a_lost_connection_gets_a_rst_signed_by_the_listener_on_its_source_port() {
    // BGP: both ends use port 179. Our connection from 40000 to the peer's 179 is gone;
    // the peer's segments come from its port 179, where our own listener holds the key
    // (Linux's tcp_v4_send_reset finds it through the segment's source port).
    let key: &[u8] = b"bgp";
    let mut server = stack(SERVER);
    let listener = server
        .listen(format!("{SERVER}:179").parse().unwrap(), 4)
        .unwrap();
    server
        .set_listener_md5_key(listener, Md5Key::new(ip(CLIENT), None, key).unwrap())
        .unwrap();
    let segment = |sign: Option<&[u8]>| {
        let options = TcpOptions {
            md5: sign.map(|_| [0; 16]),
            ..TcpOptions::default()
        };
        let seg = TcpRepr {
            src_port: 179,
            dst_port: 40000,
            seq: SeqNum::new(5000),
            ack: SeqNum::new(7000),
            flags: TcpFlags::ACK,
            window: 512,
            urgent: 0,
            options,
            payload: b"",
        };
        let mut p = wire::emit_tcp_packet(ip(CLIENT), ip(SERVER), 64, &seg).unwrap();
        if let Some(k) = sign {
            wire::sign_tcp_md5(
                &mut p[20..],
                &ip(CLIENT),
                &ip(SERVER),
                k,
                wire::TxChecksum::Full,
            )
            .unwrap();
        }
        p
    };
    let now = Instant::ZERO;
    // Signed with the key: a RST signed with it.
    server.receive(now, &segment(Some(key)));
    let rst = server.poll_transmit(now).expect("a RST");
    let (info, seg) = wire::parse_tcp_packet(&rst).unwrap();
    assert_eq!(seg.flags, TcpFlags::RST);
    assert_eq!(seg.seq, SeqNum::new(7000));
    let want = wire::tcp_md5_digest(&info.src, &info.dst, &rst[20..], key);
    assert_eq!(seg.options.md5, want);
    // Signed with another key: no RST at all.
    server.receive(now, &segment(Some(b"guess")));
    assert_eq!(server.poll_transmit(now), None);
    // Unsigned: the usual unsigned RST.
    server.receive(now, &segment(None));
    let rst = server.poll_transmit(now).expect("a RST");
    let (_, seg) = wire::parse_tcp_packet(&rst).unwrap();
    assert_eq!((seg.flags, seg.options.md5), (TcpFlags::RST, None));
}
