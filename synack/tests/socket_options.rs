//! The engine's side of the socket calls `std` and tokio users know: shutdown of the
//! reading half (as Linux does it), MSG_PEEK, SO_ERROR, IP_TTL, write readiness and
//! TCP_NOTSENT_LOWAT.

mod common;

use common::*;
use synack::wire::TcpFlags;
use synack::{Error, Event, TcpState};

// Linux's tcp_recvmsg: after SHUT_RD a read returns what is queued, then 0 at once.
#[test]
fn after_shutdown_read_a_read_returns_the_queued_bytes_then_end_of_stream_at_once() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.inject(ack(), 5001, iss + 1, 65535, b"queued");
    h.outputs();
    h.stack.shutdown_read(h.now, c).unwrap();
    assert!(h.stack.readable(c).unwrap());
    h.expect_none();
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"queued");
    assert_eq!(
        h.stack.recv(h.now, c, &mut buf),
        Ok(0),
        "end-of-stream, not WouldBlock"
    );
    assert_eq!(h.stack.state(c), Ok(TcpState::Established));
}

// Measured on Linux 6.x: data the peer sends after SHUT_RD is still queued and read.
#[test]
fn data_arriving_after_shutdown_read_is_still_accepted_and_readable() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.shutdown_read(h.now, c).unwrap();
    h.inject(ack(), 5001, iss + 1, 65535, b"late");
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!(a.ack, 5005, "the data is acknowledged");
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"late");
}

// RFC 1122 4.2.2.13 and Linux's TCPAbortOnData: with both halves shut down, new data is
// answered with a RST, and the application's next call sees the reset.
#[test]
fn data_after_both_halves_are_shut_down_is_answered_with_a_reset() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.shutdown_read(h.now, c).unwrap();
    h.stack.shutdown(h.now, c).unwrap();
    let fin = h.expect_one();
    assert!(fin.has(TcpFlags::FIN));
    assert_eq!(h.stack.state(c), Ok(TcpState::FinWait1));
    h.inject(ack(), 5001, iss + 2, 65535, b"more");
    let rst = h.expect_one();
    assert!(rst.has(TcpFlags::RST), "{rst:?}");
    assert_eq!(h.state(), None, "the connection is gone");
    assert_eq!(
        h.stack.recv(h.now, c, &mut [0u8; 8]),
        Err(Error::ConnectionReset)
    );
}

#[test]
fn shutdown_read_wakes_a_waiting_reader() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.events.clear();
    h.stack.shutdown_read(h.now, c).unwrap();
    h.drain_events();
    assert!(
        h.events.contains(&Event::Readable(c)),
        "a reader blocked on this socket must be woken: {:?}",
        h.events
    );
}

#[test]
fn peek_leaves_the_bytes_for_the_next_read() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    assert_eq!(h.stack.peek(c, &mut [0u8; 4]), Err(Error::WouldBlock));
    h.inject(ack(), 5001, iss + 1, 65535, b"hello");
    let mut buf = [0u8; 3];
    assert_eq!(h.stack.peek(c, &mut buf), Ok(3));
    assert_eq!(&buf, b"hel");
    let mut all = [0u8; 16];
    assert_eq!(h.stack.recv(h.now, c, &mut all), Ok(5));
    assert_eq!(&all[..5], b"hello");
}

// SO_ERROR is read once.
#[test]
fn take_error_returns_the_reset_once() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    assert_eq!(h.stack.take_error(c), Ok(None));
    h.inject(rst(), 5001, 0, 0, &[]);
    assert_eq!(h.stack.take_error(c), Ok(Some(Error::ConnectionReset)));
    assert_eq!(h.stack.take_error(c), Ok(None));
}

#[test]
fn set_ttl_changes_the_ttl_of_the_connections_packets_only() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    assert_eq!(h.stack.ttl(c), Ok(64));
    h.stack
        .set_ttl(h.now, c, std::num::NonZeroU8::new(7))
        .unwrap();
    assert_eq!(h.stack.ttl(c), Ok(7));
    h.stack.send(h.now, c, b"x").unwrap();
    let p = h.stack.poll_transmit(h.now).expect("a data segment");
    assert_eq!(p[0] >> 4, 4, "IPv4");
    assert_eq!(p[8], 7, "the IPv4 TTL field");
    h.stack.set_ttl(h.now, c, None).unwrap();
    assert_eq!(h.stack.ttl(c), Ok(64), "None goes back to Config::ttl");
}

#[test]
fn writable_is_false_with_a_full_send_buffer_and_a_writable_event_follows_room() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.set_buffers(h.now, c, Some(4096), None).unwrap();
    assert_eq!(h.stack.writable(h.now, c), Ok(true));
    let mut sent = 0;
    while let Ok(n) = h.stack.send(h.now, c, &[7u8; 1024]) {
        sent += n;
    }
    assert!(sent >= 4096);
    assert_eq!(h.stack.writable(h.now, c), Ok(false));
    let out = h.outputs();
    let acked: u32 = out.iter().map(|s| s.payload.len() as u32).sum();
    h.events.clear();
    h.inject(ack(), 5001, iss + 1 + acked, 65535, &[]);
    assert!(
        h.events.contains(&Event::Writable(c)),
        "room after the ACK: {:?}",
        h.events
    );
    assert_eq!(h.stack.writable(h.now, c), Ok(true));
}

#[test]
fn a_closed_connection_is_writable_because_a_write_fails_at_once() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.inject(rst(), 5001, 0, 0, &[]);
    assert_eq!(h.stack.writable(h.now, c), Ok(true));
    assert_eq!(h.stack.send(h.now, c, b"x"), Err(Error::ConnectionReset));
}

/// Bytes of payload in these segments.
fn payload_len(segs: &[Seg]) -> u32 {
    segs.iter().map(|s| s.payload.len() as u32).sum()
}

// Linux's tcp_stream_memory_free: with TCP_NOTSENT_LOWAT a write takes data only while
// the unsent bytes are below the limit (synack in whole segments), and poll says
// writable only while they are below half of it.
#[test]
fn with_notsent_lowat_send_stops_at_the_limit_and_writable_is_false_until_it_is_sent() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.stack.set_notsent_lowat(h.now, c, Some(4000)).unwrap();
    assert_eq!(h.stack.notsent_lowat(c), Ok(Some(4000)));
    assert_eq!(h.stack.writable(h.now, c), Ok(true));
    let n = h.stack.send(h.now, c, &[1u8; 100_000]).unwrap();
    assert!((4000..4000 + 1460).contains(&n), "took {n}");
    assert_eq!(h.stack.writable(h.now, c), Ok(false));
    assert_eq!(
        h.stack.send(h.now, c, b"more"),
        Err(Error::WouldBlock),
        "the unsent bytes reached the limit"
    );
    h.events.clear();
    let out = h.outputs();
    assert_eq!(payload_len(&out) as usize, n, "all of it fits the window");
    assert!(
        h.events.contains(&Event::Writable(c)),
        "sent: room below the limit again: {:?}",
        h.events
    );
    assert_eq!(h.stack.writable(h.now, c), Ok(true));
    assert!(h.stack.send(h.now, c, b"more").is_ok());
}

#[test]
fn with_notsent_lowat_the_writable_event_waits_until_the_unsent_bytes_fall_below_half_the_limit() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.set_notsent_lowat(h.now, c, Some(40_000)).unwrap();
    let n = h.stack.send(h.now, c, &[1u8; 100_000]).unwrap() as u32;
    assert!((40_000..100_000).contains(&n), "took {n}");
    h.events.clear();
    let first = payload_len(&h.outputs());
    assert!(first < n, "the initial window holds back part of it");
    let unsent = n - first;
    assert!(2 * unsent >= 40_000, "test set-up: {unsent} unsent");
    assert_eq!(h.stack.writable(h.now, c), Ok(false));
    assert!(
        !h.events.contains(&Event::Writable(c)),
        "too much unsent for a wakeup: {:?}",
        h.events
    );
    // Each ACK frees buffer space, but that alone is no wakeup; the data it lets go
    // is, once the unsent bytes are below half the limit.
    let (mut sent, mut unsent) = (first, unsent);
    loop {
        h.events.clear();
        h.inject(ack(), 5001, iss + 1 + sent, 65535, &[]);
        assert!(!h.events.contains(&Event::Writable(c)), "{:?}", h.events);
        let more = payload_len(&h.outputs());
        assert!(more > 0, "the ACK lets more go");
        (sent, unsent) = (sent + more, unsent - more);
        let woken = h.events.contains(&Event::Writable(c));
        assert_eq!(
            woken,
            2 * unsent < 40_000,
            "{unsent} unsent: {:?}",
            h.events
        );
        assert_eq!(h.stack.writable(h.now, c), Ok(woken));
        if woken {
            break;
        }
    }
}

#[test]
fn notsent_lowat_follows_the_configuration_until_the_connection_sets_its_own() {
    let mut config = plain_config();
    config.tcp_notsent_lowat = 4000;
    let mut h = Harness::new(config);
    let (c, _) = h.established_active(5000);
    assert_eq!(h.stack.notsent_lowat(c), Ok(None));
    let n = h.stack.send(h.now, c, &[1u8; 100_000]).unwrap();
    assert!(n < 4000 + 1460, "the sysctl's limit applies: took {n}");
    h.outputs();
    // u32::MAX turns the limit off for this connection: the send buffer is the bound.
    h.stack.set_notsent_lowat(h.now, c, Some(u32::MAX)).unwrap();
    let m = h.stack.send(h.now, c, &[1u8; 100_000]).unwrap();
    assert!(m > 4000 + 1460, "took {m}");
}
