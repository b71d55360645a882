//! SYN cookies (RFC 4987 3.6) one segment at a time: when the SYN queue is full the
//! SYN-ACK keeps no state, the ISN carries the MSS, the timestamp carries window scale
//! and SACK-permitted (as Linux encodes them), and the ACK that returns a valid cookie
//! opens the connection; a forged or stale one is answered with RST.

mod common;

use std::time::Duration;

use common::*;
use synack::wire::{TcpOptions, Timestamps};
use synack::{Config, Event, TcpState};

fn config() -> Config {
    let mut config = plain_config();
    config.tcp_timestamps = true;
    config.tcp_window_scaling = true;
    config.tcp_sack = true;
    config
}

/// Listen with backlog 1 (a SYN queue of 2) and fill it from two other ports.
fn full_syn_queue(h: &mut Harness) {
    h.stack.listen(h.local, 1).unwrap();
    let peer = h.peer;
    for port in [50001, 50002] {
        h.peer.set_port(port);
        h.inject_syn(1);
        assert!(h.expect_one().is(syn_ack()));
    }
    h.peer = peer;
    assert_eq!(h.stack.connection_count(), 2);
}

fn syn_options(ts: Option<u32>) -> TcpOptions {
    TcpOptions {
        mss: Some(1400),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: ts.map(|tsval| Timestamps { tsval, tsecr: 0 }),
        ..TcpOptions::default()
    }
}

#[test]
fn a_full_syn_queue_answers_with_a_cookie_and_keeps_no_state() {
    let mut h = Harness::new(config());
    full_syn_queue(&mut h);
    h.inject_opts(syn(), 1000, 0, 65535, &[], syn_options(Some(777)));
    let synack = h.expect_one();
    assert!(synack.is(syn_ack()));
    assert_eq!(synack.ack, 1001);
    assert_eq!(h.stack.connection_count(), 2, "no state for the cookie");
    assert_eq!(h.stack.stats().syncookies_sent, 1);
    // With timestamps, window scale and SACK are offered and remembered in the TSval.
    assert!(synack.options.sack_permitted);
    assert!(synack.options.window_scale.is_some());
    let ts = synack.options.timestamps.expect("timestamps");
    assert_eq!(ts.tsecr, 777);
    // Linux's log line, as a warning event, once.
    let warnings = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Warning { message, .. } if message.contains("SYN flooding on port 80")))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn the_ack_returning_a_valid_cookie_opens_the_connection_with_the_remembered_options() {
    let mut h = Harness::new(config());
    full_syn_queue(&mut h);
    h.inject_opts(syn(), 1000, 0, 65535, &[], syn_options(Some(777)));
    let synack = h.expect_one();
    let ts = synack.options.timestamps.unwrap();
    let options = TcpOptions {
        timestamps: Some(Timestamps {
            tsval: 778,
            tsecr: ts.tsval,
        }),
        ..TcpOptions::default()
    };
    h.inject_opts(ack(), 1001, synack.seq + 1, 1000, b"hello", options);
    assert_eq!(h.state(), Some(TcpState::Established));
    assert_eq!(h.stack.stats().syncookies_recv, 1);
    let c = h.accept_any();
    let info = h.stack.info(h.now, c).unwrap();
    // The peer's window scale (7) and SACK came back from the timestamp; its MSS of
    // 1400 was rounded down to 1300, the nearest value a cookie holds (less 12 bytes
    // of timestamp option).
    assert_eq!(info.wscale.0, 7);
    assert!(info.sack && info.timestamps);
    assert_eq!(info.snd_mss, 1300 - 12);
    // The data that rode on the ACK was delivered.
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    // The peer's window is scaled by 7.
    assert_eq!(info.snd_wnd, Some(1000 << 7));
}

#[test]
fn without_timestamps_a_cookie_syn_ack_offers_no_window_scale_or_sack() {
    let mut h = Harness::new(config());
    full_syn_queue(&mut h);
    h.inject_opts(syn(), 1000, 0, 65535, &[], syn_options(None));
    let synack = h.expect_one();
    assert!(synack.options.timestamps.is_none());
    assert!(synack.options.window_scale.is_none());
    assert!(!synack.options.sack_permitted);
    assert!(synack.options.mss.is_some());
    h.inject(ack(), 1001, synack.seq + 1, 1000, &[]);
    let c = h.accept_any();
    let info = h.stack.info(h.now, c).unwrap();
    assert_eq!(info.wscale, (0, 0));
    assert!(!info.sack && !info.timestamps);
    assert_eq!(info.snd_mss, 1300);
}

#[test]
fn a_forged_cookie_is_answered_with_rst_and_counted() {
    let mut h = Harness::new(config());
    full_syn_queue(&mut h);
    h.inject_opts(syn(), 1000, 0, 65535, &[], syn_options(None));
    let synack = h.expect_one();
    h.inject(ack(), 1001, synack.seq.wrapping_add(1000), 1000, &[]);
    let reset = h.expect_one();
    assert!(reset.is(rst()));
    assert_eq!(reset.seq, synack.seq.wrapping_add(1000));
    assert_eq!(h.state(), None);
    assert_eq!(h.stack.stats().syncookies_failed, 1);
}

#[test]
fn a_cookie_older_than_two_minutes_is_refused() {
    let mut h = Harness::new({
        let mut config = config();
        config.tcp_syncookies = 2;
        config
    });
    h.stack.listen(h.local, 16).unwrap();
    h.inject_opts(syn(), 1000, 0, 65535, &[], syn_options(None));
    let synack = h.expect_one();
    h.now += Duration::from_secs(121);
    h.inject(ack(), 1001, synack.seq + 1, 1000, &[]);
    assert!(h.expect_one().is(rst()));
    assert_eq!(h.state(), None);
}

#[test]
fn tcp_syncookies_2_sends_cookies_even_with_room_in_the_syn_queue() {
    let mut h = Harness::new({
        let mut config = config();
        config.tcp_syncookies = 2;
        config
    });
    h.stack.listen(h.local, 16).unwrap();
    h.inject_syn(1000);
    let synack = h.expect_one();
    assert_eq!(h.stack.connection_count(), 0);
    h.inject(ack(), 1001, synack.seq + 1, 1000, &[]);
    assert_eq!(h.state(), Some(TcpState::Established));
}

#[test]
fn with_tcp_syncookies_0_a_full_syn_queue_drops_the_syn() {
    let mut h = Harness::new({
        let mut config = config();
        config.tcp_syncookies = 0;
        config
    });
    full_syn_queue(&mut h);
    h.inject_syn(1000);
    h.expect_none();
    assert_eq!(h.stack.stats().dropped("listen_overflow"), 1);
}

#[test]
fn an_ipv6_cookie_remembers_the_mss_from_the_ipv6_table() {
    use synack::wire::{self, SeqNum, TcpFlags, TcpRepr};
    use synack::{Instant, Stack};
    let mut stack = Stack::new({
        let mut config = config();
        config.tcp_syncookies = 2;
        config.mtu = 9000;
        config
    });
    let local: std::net::SocketAddr = "[2001:db8::1]:80".parse().unwrap();
    let peer: std::net::SocketAddr = "[2001:db8::2]:40000".parse().unwrap();
    stack.add_address(local.ip());
    let listener = stack.listen(local, 16).unwrap();
    let now = Instant::from_secs(1);
    let segment = |flags, seq: u32, ack: u32, mss| {
        let repr = TcpRepr {
            src_port: peer.port(),
            dst_port: local.port(),
            seq: SeqNum::new(seq),
            ack: SeqNum::new(ack),
            flags,
            window: 65535,
            urgent: 0,
            options: TcpOptions {
                mss,
                ..TcpOptions::default()
            },
            payload: &[],
        };
        wire::emit_tcp_packet(peer.ip(), local.ip(), 64, &repr).unwrap()
    };
    stack.receive(now, &segment(TcpFlags::SYN, 1000, 0, Some(8960)));
    let synack = stack.poll_transmit(now).expect("a cookie SYN-ACK");
    let (_, synack) = wire::parse_tcp_packet(&synack).unwrap();
    assert_eq!(stack.connection_count(), 0, "no state for the cookie");
    stack.receive(
        now,
        &segment(TcpFlags::ACK, 1001, synack.seq.get() + 1, None),
    );
    let c = stack
        .accept(listener)
        .expect("the cookie opened the connection");
    // The peer's 8960 rounds down to 8940 in the IPv6 table (1220, 1420, 1440, 8940; the
    // IPv4 table would give 1460), which is also our own MSS at MTU 9000.
    assert_eq!(stack.info(now, c).unwrap().snd_mss, 8940);
}
