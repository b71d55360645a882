//! The engine's side of the socket calls `std` and tokio users know: shutdown of the
//! reading half (as Linux does it), MSG_PEEK, SO_ERROR, IP_TTL and write readiness.

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
