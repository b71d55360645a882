//! Delayed ACKs (RFC 1122 4.2.3.2, RFC 5681 4.2) and Nagle's algorithm (RFC 1122
//! 4.2.3.4), driven segment by segment against the scripted peer.

mod common;

use std::time::Duration;

use common::*;

/// Delayed ACKs from the first segment (quick-ACK mode off).
fn with_delayed_acks() -> Harness {
    Harness::new({
        let mut config = plain_config();
        config.delayed_ack = Duration::from_millis(40);
        config.quick_acks = 0;
        config
    })
}

// Linux's quick-ACK mode: the first 16 data segments are ACKed at once, then ACKs are
// delayed; after a silence longer than the RTO the mode starts again.
#[test]
fn the_first_sixteen_segments_and_those_after_an_idle_are_acked_at_once() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.delayed_ack = Duration::from_millis(40);
        config
    });
    let (_, iss) = h.established_passive(1000);
    let mut seq = 1001;
    for i in 0..16 {
        h.inject(ack(), seq, iss + 1, 65535, b"0123456789");
        seq += 10;
        assert_eq!(h.expect_one().ack, seq, "segment {i} is ACKed at once");
    }
    h.inject(ack(), seq, iss + 1, 65535, b"0123456789");
    seq += 10;
    h.expect_none();
    let sent = h.advance_collect(Duration::from_millis(100));
    assert_eq!(
        sent.len(),
        1,
        "the 17th waits for the delayed ACK: {sent:?}"
    );
    // Idle for 3 s (more than the 1 s RTO): quick ACKs again.
    h.advance_collect(Duration::from_secs(3));
    h.inject(ack(), seq, iss + 1, 65535, b"0123456789");
    assert_eq!(h.expect_one().ack, seq + 10);
}

// Linux's interactive mode: once we answer data with data, the quick ACKs stop and a
// lone segment waits for the delayed-ACK timer.
#[test]
fn answering_data_with_data_turns_quick_acks_off() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.delayed_ack = Duration::from_millis(40);
        config
    });
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"request");
    assert_eq!(h.expect_one().ack, 1008, "quick ACK");
    h.stack.send(h.now, c, b"response").unwrap();
    assert_eq!(h.expect_one().payload, b"response");
    h.inject(ack(), 1008, iss + 9, 65535, b"request");
    h.expect_none();
    let sent = h.advance_collect(Duration::from_millis(100));
    assert_eq!(sent.len(), 1, "{sent:?}");
}

// RFC 5681 4.2: an ACK at least every second full-sized segment.
#[test]
fn every_second_in_order_segment_is_acked_at_once() {
    let mut h = with_delayed_acks();
    let (_, iss) = h.established_passive(1000);
    let mss = vec![b'x'; 1460];
    h.inject(ack(), 1001, iss + 1, 65535, &mss);
    h.expect_none();
    h.inject(ack(), 1001 + 1460, iss + 1, 65535, &mss);
    let a = h.expect_one();
    assert_eq!(a.ack, 1001 + 2 * 1460);
}

// RFC 1122 4.2.3.2: a lone segment is ACKed after the delay (here 40 ms, under 500 ms).
#[test]
fn a_lone_segment_is_acked_after_the_delay() {
    let mut h = with_delayed_acks();
    let (_, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"hello");
    h.expect_none();
    let sent = h.advance_collect(Duration::from_millis(100));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (at, a) = &sent[0];
    assert_eq!(a.ack, 1006);
    let delay = *at - (h.now - Duration::from_millis(100));
    assert_eq!(delay, Duration::from_millis(40));
}

// RFC 5681 4.2: out-of-order data (and data filling a gap) is ACKed at once.
#[test]
fn out_of_order_and_gap_filling_segments_are_acked_at_once() {
    let mut h = with_delayed_acks();
    let (_, iss) = h.established_passive(1000);
    h.inject(ack(), 1011, iss + 1, 65535, b"second....");
    assert_eq!(h.expect_one().ack, 1001, "duplicate ACK for the gap");
    h.inject(ack(), 1001, iss + 1, 65535, b"first.....");
    assert_eq!(h.expect_one().ack, 1021, "the gap is filled: ACK at once");
}

// Data we send carries the ACK: no separate delayed ACK follows.
#[test]
fn data_going_out_carries_the_pending_ack() {
    let mut h = with_delayed_acks();
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"request");
    h.expect_none();
    h.stack.send(h.now, c, b"response").unwrap();
    let r = h.expect_one();
    assert_eq!((r.ack, r.payload.as_slice()), (1008, &b"response"[..]));
    // Well past the delayed-ACK time, short of a retransmission: nothing more.
    assert!(h.advance_collect(Duration::from_millis(100)).is_empty());
}

// RFC 1122 4.2.3.4: with data unacknowledged, a small segment waits until the ACK
// comes or a full segment's worth is queued; TCP_NODELAY sends at once.
#[test]
fn nagle_holds_small_segments_while_data_is_unacknowledged_and_nodelay_does_not() {
    for nodelay in [false, true] {
        let mut h = Harness::new({
            let mut config = plain_config();
            config.tcp_nodelay = false;
            config
        });
        let (c, iss) = h.established_passive(1000);
        h.stack.set_nodelay(h.now, c, nodelay).unwrap();
        h.stack.send(h.now, c, b"a").unwrap();
        assert_eq!(
            h.expect_one().payload,
            b"a",
            "nothing in flight: goes at once"
        );
        for byte in [b"b", b"c"] {
            h.stack.send(h.now, c, byte).unwrap();
            if nodelay {
                assert_eq!(
                    h.expect_one().payload,
                    byte,
                    "TCP_NODELAY: each write at once"
                );
            } else {
                h.expect_none();
            }
        }
        if !nodelay {
            h.inject(ack(), 1001, iss + 2, 65535, &[]);
            assert_eq!(
                h.expect_one().payload,
                b"bc",
                "held bytes go together on the ACK"
            );
        }
    }
}

// A small segment that times out is resent at once: Nagle holds only new data (found by
// the drill corpus: the retransmission of a lone small write was held forever).
#[test]
fn nagle_never_holds_a_retransmission() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_nodelay = false;
        config
    });
    let (c, _) = h.established_passive(1000);
    h.stack.send(h.now, c, b"small").unwrap();
    assert_eq!(h.expect_one().payload, b"small");
    let resent = h.advance_collect(Duration::from_secs(2));
    assert!(
        !resent.is_empty(),
        "the retransmission timer fired and resent"
    );
    assert_eq!(resent[0].1.payload, b"small");
}
