//! Urgent data (RFC 9293 3.8.5, MUST-30/MUST-31) with Linux's socket semantics: the
//! urgent byte read out of band with MSG_OOB (or inline with SO_OOBINLINE), reads that
//! stop at the mark, SIOCATMARK; and send(MSG_OOB)'s URG and urgent pointer.

mod common;

use common::*;
use synack::wire::TcpFlags;
use synack::{Error, SendFlags, TcpState};

const EINVAL: Error = Error::InvalidState(TcpState::Established);

fn read(h: &mut Harness, c: synack::ConnectionHandle, n: usize) -> Result<Vec<u8>, Error> {
    let mut buf = vec![0u8; n];
    let got = h.stack.recv(h.now, c, &mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

// Linux's tcp_check_urg: the pointer names the byte after the urgent one ("abcd!" with
// urgent pointer 5: '!' is urgent). Without SO_OOBINLINE it leaves the stream.
#[test]
fn the_urgent_byte_is_read_out_of_band_and_reads_stop_at_the_mark() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"abcd!efg", 5);
    assert_eq!(h.expect_one().ack, 1009);
    assert!(!h.stack.at_mark(c).unwrap());
    assert_eq!(
        h.stack.recv_queue(c).unwrap(),
        8,
        "SIOCINQ counts the urgent byte"
    );
    assert!(h.stack.urgent_pending(c).unwrap());
    // A read stops before the mark, even with room for more.
    assert_eq!(read(&mut h, c, 100).unwrap(), b"abcd");
    assert!(h.stack.at_mark(c).unwrap());
    assert_eq!(h.stack.recv_oob(h.now, c, true), Ok(Some(b'!')), "MSG_PEEK");
    assert_eq!(h.stack.recv_oob(h.now, c, false), Ok(Some(b'!')));
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL), "read once");
    assert!(!h.stack.urgent_pending(c).unwrap());
    // The next read skips the urgent byte and goes on.
    assert_eq!(read(&mut h, c, 100).unwrap(), b"efg");
    assert!(!h.stack.at_mark(c).unwrap());
    assert_eq!(read(&mut h, c, 100), Err(Error::WouldBlock));
}

#[test]
fn the_stream_skips_the_urgent_byte_whether_or_not_it_was_read() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"ab!cd", 3);
    assert_eq!(read(&mut h, c, 1).unwrap(), b"a");
    assert_eq!(read(&mut h, c, 100).unwrap(), b"b");
    let mut peek = [0u8; 10];
    // MSG_PEEK at the mark sees what a read would: the urgent byte skipped.
    let n = h.stack.peek(c, &mut peek).unwrap();
    assert_eq!(&peek[..n], b"cd");
    assert_eq!(read(&mut h, c, 100).unwrap(), b"cd");
    // Past the mark: nothing to read out of band any more.
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL));
}

#[test]
fn with_oob_inline_the_urgent_byte_stays_in_the_stream_and_msg_oob_is_einval() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.stack.set_oob_inline(c, true).unwrap();
    assert!(h.stack.oob_inline(c).unwrap());
    h.inject_urg(1001, iss + 1, b"abcd!efg", 5);
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL));
    assert_eq!(read(&mut h, c, 100).unwrap(), b"abcd");
    assert!(h.stack.at_mark(c).unwrap());
    assert_eq!(read(&mut h, c, 100).unwrap(), b"!efg");
}

#[test]
fn no_urgent_data_is_einval_for_msg_oob() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL));
    h.inject(ack(), 1001, iss + 1, 65535, b"plain");
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL));
    assert!(!h.stack.at_mark(c).unwrap());
    assert_eq!(read(&mut h, c, 100).unwrap(), b"plain");
}

// A pointer beyond the segment: the mark waits for its byte (EAGAIN meanwhile, as
// Linux's TCP_URG_NOTYET), and reads stop at it all the same.
#[test]
fn an_urgent_pointer_beyond_the_segment_waits_for_its_byte() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"abc", 6); // urgent byte: seq 1006, the 6th byte
    h.expect_one();
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(Error::WouldBlock));
    assert_eq!(read(&mut h, c, 100).unwrap(), b"abc");
    h.inject(ack(), 1004, iss + 1, 65535, b"de!fg");
    h.expect_one();
    assert!(h.stack.urgent_pending(c).unwrap());
    assert_eq!(read(&mut h, c, 100).unwrap(), b"de");
    assert!(h.stack.at_mark(c).unwrap());
    assert_eq!(h.stack.recv_oob(h.now, c, false), Ok(Some(b'!')));
    assert_eq!(read(&mut h, c, 100).unwrap(), b"fg");
}

// Only the last urgent byte is out of band: a second URG moves the mark, and the first
// urgent byte becomes ordinary data (Linux's tcp_check_urg).
#[test]
fn a_second_urg_moves_the_mark_and_the_first_byte_becomes_data() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"ab1cd", 3);
    h.inject_urg(1006, iss + 1, b"ef2gh", 3);
    assert_eq!(read(&mut h, c, 100).unwrap(), b"ab1cdef");
    assert!(h.stack.at_mark(c).unwrap());
    assert_eq!(h.stack.recv_oob(h.now, c, false), Ok(Some(b'2')));
    assert_eq!(read(&mut h, c, 100).unwrap(), b"gh");
}

// A replayed URG (its byte already below RCV.NXT) changes nothing.
#[test]
fn an_old_urgent_pointer_is_ignored() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"abcdef");
    h.expect_one();
    h.inject_urg(1001, iss + 1, b"abcdef", 3);
    assert_eq!(h.stack.recv_oob(h.now, c, false), Err(EINVAL));
    assert_eq!(read(&mut h, c, 100).unwrap(), b"abcdef");
}

// send(MSG_OOB): URG on every segment from before SND.UP, the pointer naming the byte
// after the urgent one, until SND.UP is acknowledged.
#[test]
fn msg_oob_sets_urg_and_the_pointer_until_acknowledged() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    let oob = SendFlags {
        oob: true,
        ..SendFlags::default()
    };
    h.stack.send_flags(h.now, c, b"hello!", oob).unwrap();
    let s = h.expect_one();
    assert!(s.has(TcpFlags::URG), "{s:?}");
    assert_eq!((s.seq, s.urgent, s.payload.len()), (iss + 1, 6, 6));
    // A pure ACK starts at SND.NXT, which is SND.UP here: no URG (Linux marks only
    // segments that start before SND.UP).
    h.inject(ack(), 1001, iss + 1, 65535, b"x");
    let a = h.expect_one();
    assert!(!a.has(TcpFlags::URG) && a.urgent == 0, "{a:?}");
    // Part acknowledged: the retransmission's pointer is from its own start.
    h.inject(ack(), 1002, iss + 4, 65535, b"");
    h.stack.send(h.now, c, b"more").unwrap();
    let m = h.expect_one();
    assert!(!m.has(TcpFlags::URG), "starts after SND.UP: {m:?}");
    h.inject(ack(), 1002, iss + 11, 65535, b"");
    h.stack.send(h.now, c, b"plain").unwrap();
    let p = h.expect_one();
    assert!(!p.has(TcpFlags::URG) && p.urgent == 0, "{p:?}");
}

#[test]
fn the_retransmission_of_urgent_data_carries_the_pointer_from_its_start() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    let oob = SendFlags {
        oob: true,
        ..SendFlags::default()
    };
    h.stack.send_flags(h.now, c, b"0123456789", oob).unwrap();
    assert_eq!(h.expect_one().urgent, 10);
    h.inject(ack(), 1001, iss + 5, 65535, b"");
    let sent = h.advance_collect(std::time::Duration::from_secs(3));
    let (_, r) = &sent[0];
    assert_eq!((r.seq, r.urgent), (iss + 5, 6), "{r:?}");
    assert!(r.has(TcpFlags::URG));
}

// Nagle does not hold urgent data back (Linux's tcp_nagle_test).
#[test]
fn nagle_does_not_hold_urgent_data() {
    let mut config = plain_config();
    config.tcp_nodelay = false;
    let mut h = Harness::new(config);
    let (c, iss) = h.established_passive(1000);
    h.stack.send(h.now, c, b"a").unwrap();
    assert_eq!(h.expect_one().payload, b"a");
    h.stack.send(h.now, c, b"b").unwrap();
    h.expect_none();
    let oob = SendFlags {
        oob: true,
        ..SendFlags::default()
    };
    h.stack.send_flags(h.now, c, b"!", oob).unwrap();
    let s = h.expect_one();
    assert_eq!(
        (s.seq, s.payload.as_slice(), s.urgent),
        (iss + 2, &b"b!"[..], 2)
    );
}

// Linux's tcp_inq (SIOCINQ, TCP_INQ): with an out-of-band urgent byte ahead, only the
// bytes before it count; inline, or once read past, all of them.
#[test]
fn siocinq_counts_up_to_an_out_of_band_urgent_byte() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"abcd!efg", 5);
    assert_eq!(h.stack.inq(c).unwrap(), 4);
    assert_eq!(read(&mut h, c, 2).unwrap(), b"ab");
    assert_eq!(h.stack.inq(c).unwrap(), 2);
    assert_eq!(read(&mut h, c, 100).unwrap(), b"cd");
    assert_eq!(h.stack.recv_oob(h.now, c, false), Ok(Some(b'!')));
    assert_eq!(h.stack.inq(c).unwrap(), 0, "still at the mark");
    assert_eq!(read(&mut h, c, 100).unwrap(), b"efg");
    assert_eq!(h.stack.inq(c).unwrap(), 0);
    h.stack.set_oob_inline(c, true).unwrap();
    h.inject_urg(1009, iss + 1, b"xy!z", 3);
    assert_eq!(h.stack.inq(c).unwrap(), 4, "inline: all");
}

// splice (Linux's tcp_read_sock) stops at the mark, inline or not, and returns 0 there
// while bytes wait; an ordinary read goes on past it.
#[test]
fn recv_to_mark_never_crosses_the_mark() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject_urg(1001, iss + 1, b"abcd!efg", 5);
    let mut buf = [0u8; 100];
    assert_eq!(h.stack.recv_to_mark(h.now, c, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(h.stack.recv_to_mark(h.now, c, &mut buf), Ok(0));
    assert_eq!(
        h.stack.recv_queue(c).unwrap(),
        4,
        "the urgent byte and the rest wait"
    );
    assert_eq!(read(&mut h, c, 100).unwrap(), b"efg");
    assert_eq!(
        h.stack.recv_to_mark(h.now, c, &mut buf),
        Err(Error::WouldBlock)
    );
}
