//! The error queue of a connection (Linux's MSG_ERRQUEUE for TCP): MSG_ZEROCOPY
//! completions numbered per send and merged while unread, SO_TIMESTAMPING stamps at
//! each send's last byte, and the ErrorQueue event that wakes a reader.

mod common;

use std::time::Duration;

use common::*;
use synack::stack::{SendReport, TimestampKind, TxReport, TxTimestamps};
use synack::Event;

fn zerocopy() -> SendReport {
    let mut how = SendReport::default();
    how.zerocopy = true;
    how
}

// Linux's msg_zerocopy_callback runs when the last reference to the data goes: for a
// send that is when the peer has acknowledged all of its bytes.
#[test]
fn a_zerocopy_send_completes_only_when_all_its_bytes_are_acknowledged() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    assert_eq!(
        h.stack.send_reported(h.now, c, &[1; 2000], zerocopy()),
        Ok(2000)
    );
    h.outputs();
    h.inject(ack(), 5001, iss + 1001, 65535, b"");
    assert_eq!(h.stack.recv_error(c), Ok(None), "half acknowledged");
    assert_eq!(h.stack.error_queue_len(c), Ok(0));
    assert!(!h.events.contains(&Event::ErrorQueue(c)));
    h.inject(ack(), 5001, iss + 2001, 65535, b"");
    assert!(
        h.events.contains(&Event::ErrorQueue(c)),
        "the ErrorQueue event wakes the reader"
    );
    assert_eq!(h.stack.error_queue_len(c), Ok(1));
    assert_eq!(
        h.stack.recv_error(c),
        Ok(Some(TxReport::Zerocopy { first: 0, last: 0 }))
    );
    assert_eq!(h.stack.recv_error(c), Ok(None));
}

// skb_zerocopy_notify_extend: a completion following on the unread one at the tail of
// the queue extends its range; a plain send takes no number.
#[test]
fn completions_not_yet_read_merge_and_plain_sends_take_no_number() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    let mut acked = iss + 1;
    for how in [zerocopy(), SendReport::default(), zerocopy(), zerocopy()] {
        h.stack.send_reported(h.now, c, &[1; 100], how).unwrap();
        h.outputs();
        acked += 100;
        h.inject(ack(), 5001, acked, 65535, b"");
    }
    assert_eq!(
        h.stack.recv_error(c),
        Ok(Some(TxReport::Zerocopy { first: 0, last: 2 }))
    );
}

// tcp_write_queue_purge frees the data of a connection that ends: its pending
// completions are reported then.
#[test]
fn a_connection_that_ends_completes_its_pending_zerocopy_sends() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack
        .send_reported(h.now, c, &[1; 100], zerocopy())
        .unwrap();
    h.outputs();
    h.inject(rst(), 5001, iss + 1, 0, b"");
    assert_eq!(
        h.stack.recv_error(c),
        Ok(Some(TxReport::Zerocopy { first: 0, last: 0 }))
    );
}

// tcp_tx_timestamp stamps a send's last byte; SCHED and SND come when it is first sent,
// ACK when it is acknowledged (tcp_ack_tstamp), each at that moment.
#[test]
fn timestamps_mark_each_sends_last_byte_when_sent_and_when_acknowledged() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    let mut stamps = TxTimestamps::default();
    stamps.scheduled = true;
    stamps.sent = true;
    stamps.acked = true;
    h.stack.set_tx_timestamps(c, stamps).unwrap();
    h.stack.send(h.now, c, &[1; 300]).unwrap();
    let sent_at = h.now;
    h.outputs();
    h.advance(Duration::from_millis(10));
    let acked_at = h.now;
    h.inject(ack(), 5001, iss + 301, 65535, b"");
    let reports: Vec<_> = std::iter::from_fn(|| h.stack.recv_error(c).unwrap()).collect();
    let stamp = |kind, at| TxReport::Timestamp {
        kind,
        offset: 299,
        at,
    };
    assert_eq!(
        reports,
        [
            stamp(TimestampKind::Scheduled, sent_at),
            stamp(TimestampKind::Sent, sent_at),
            stamp(TimestampKind::Acked, acked_at),
        ]
    );
}

// Linux's sock_omalloc: zerocopy notifications take option memory, and a send that
// finds it spent fails with ENOBUFS; synack bounds them at 1024 per connection.
#[test]
fn zerocopy_sends_fail_with_no_buffer_space_past_1024_outstanding_notifications() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    for _ in 0..1024 {
        assert_eq!(h.stack.send_reported(h.now, c, &[1], zerocopy()), Ok(1));
        h.outputs();
    }
    assert_eq!(
        h.stack.send_reported(h.now, c, &[1], zerocopy()),
        Err(synack::Error::NoBufferSpace)
    );
    assert_eq!(h.stack.send(h.now, c, &[1]), Ok(1), "plain sends go on");
    h.outputs();
    h.inject(ack(), 5001, iss + 1026, 65535, b"");
    assert_eq!(
        h.stack.recv_error(c),
        Ok(Some(TxReport::Zerocopy {
            first: 0,
            last: 1023
        }))
    );
    assert_eq!(h.stack.send_reported(h.now, c, &[1], zerocopy()), Ok(1));
}
