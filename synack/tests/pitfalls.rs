//! The places other TCP stacks went wrong, each pinned by a test: FINs that overtake
//! data, duplicate SYNs, RST rules, TIME_WAIT reuse and restart, orphan timeouts,
//! closing with data in flight or unread, timestamps in the handshake.

mod common;

use std::time::Duration;

use common::*;
use synack::wire::{TcpOptions, Timestamps};
use synack::{Config, Error, TcpState::*};

// RFC 9293 3.10.7.4 seventh/eighth: a FIN that overtakes earlier data is remembered; the
// gap data is delivered, then end-of-stream (netstack3 dropped it; smoltcp lost data).
#[test]
fn fin_overtaking_data_is_held_until_the_gap_fills() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    // Bytes 1001..1006 are "hello"; the FIN after them arrives first.
    h.inject(fin_ack(), 1006, iss + 1, 65535, &[]);
    let dup = h.expect_one();
    assert_eq!(
        dup.ack, 1001,
        "out-of-order FIN is acknowledged with a duplicate ACK"
    );
    assert_eq!(h.state(), Some(Established), "FIN not in sequence yet");
    assert_eq!(h.stack.recv(h.now, c, &mut [0; 16]), Err(Error::WouldBlock));
    h.inject(ack(), 1001, iss + 1, 65535, b"hello");
    assert_eq!(
        h.expect_one().ack,
        1007,
        "data and the held FIN acknowledged together"
    );
    assert_eq!(h.state(), Some(CloseWait));
    let mut buf = [0u8; 16];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(
        h.stack.recv(h.now, c, &mut buf),
        Ok(0),
        "then end-of-stream"
    );
}

// RFC 9293 3.1: a segment with a wrong checksum is dropped whole. The payload of an
// in-order segment is summed while it is copied into the receive buffer's free room, so
// a corrupted one (in its payload or in its header) must leave nothing there: no byte
// for the application, no ACK, and the good copy that follows is taken once.
#[test]
fn a_corrupted_in_order_segment_leaves_nothing_in_the_receive_buffer() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"first ");
    h.expect_one();
    let mut buf = [0u8; 32];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(6));
    let segment = |flags| {
        let repr = synack::wire::TcpRepr {
            src_port: h.peer.port(),
            dst_port: h.local.port(),
            seq: synack::wire::SeqNum::new(1007),
            ack: synack::wire::SeqNum::new(iss + 1),
            flags,
            window: 65535,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"second",
        };
        synack::wire::emit_tcp_packet(h.peer.ip(), h.local.ip(), 64, &repr).unwrap()
    };
    // The storage emptied by the read has room for exactly these six bytes.
    let mut bad_payload = segment(ack());
    *bad_payload.last_mut().unwrap() ^= 0x20;
    let mut bad_header = segment(ack());
    bad_header[20 + 14] ^= 0x01; // the window field
    let good = segment(ack());
    for bad in [&bad_payload, &bad_header] {
        h.stack.receive(h.now, bad);
        assert_eq!(h.outputs(), vec![], "nothing acknowledged");
        assert_eq!(h.stack.recv(h.now, c, &mut buf), Err(Error::WouldBlock));
    }
    assert_eq!(h.stack.stats().dropped("bad_tcp_checksum"), 2);
    h.stack.receive(h.now, &good);
    assert_eq!(h.expect_one().ack, 1013);
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(6));
    assert_eq!(&buf[..6], b"second");
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Err(Error::WouldBlock));
}

// RFC 9293 3.10.7.4: a FIN carrying data: deliver the payload, ACK seq+len+1.
#[test]
fn fin_carrying_data_delivers_payload_and_acks_past_the_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, b"bye");
    assert_eq!(h.expect_one().ack, 1001 + 3 + 1);
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"bye");
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(0));
}

// Linux tcp_check_req: a duplicate SYN in SYN_RECEIVED (our SYN-ACK was lost) gets the
// SYN-ACK again, never a RST.
#[test]
fn duplicate_syn_in_syn_received_resends_syn_ack_never_rst() {
    let mut h = Harness::plain();
    let first = h.passive_open(1000);
    h.inject_syn(1000);
    let again = h.expect_one();
    assert!(again.is(syn_ack()));
    assert_eq!((again.seq, again.ack), (first.seq, 1001));
    assert_eq!(h.state(), Some(SynReceived));
}

// RFC 9293 3.10.7.1: the RST answering a SYN to a closed port carries ACK = SEG.SEQ+1.
#[test]
fn syn_to_closed_port_gets_rst_ack_of_seq_plus_one() {
    let mut h = Harness::plain();
    h.inject_syn(777);
    let r = h.expect_one();
    assert!(r.is(rst_ack()));
    assert_eq!((r.seq, r.ack), (0, 778));
    assert_eq!(h.stack.stats().dropped("no_socket"), 1);
}

// RFC 9293 3.10.7.1: a segment with ACK to a closed port gets <SEQ=SEG.ACK><CTL=RST>.
#[test]
fn ack_to_closed_port_gets_rst_with_seq_of_its_ack() {
    let mut h = Harness::plain();
    h.inject(ack(), 50, 9999, 100, b"x");
    let r = h.expect_one();
    assert!(r.is(rst()));
    assert_eq!(r.seq, 9999);
}

// RFC 9293 3.10.7.1: never answer a RST (smoltcp once looped RST, ACK, RST).
#[test]
fn rst_is_never_answered() {
    let mut h = Harness::plain();
    h.inject(rst(), 50, 0, 0, &[]);
    h.inject(rst_ack(), 50, 60, 0, &[]);
    h.expect_none();
    let (_, _) = h.established_active(5000);
    h.inject(rst(), 5001 + 1_000_000, 0, 0, &[]);
    h.expect_none();
}

fn into_time_wait(h: &mut Harness) -> u32 {
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    h.expect_one();
    assert_eq!(h.state(), Some(TimeWait));
    iss
}

// RFC 9293 3.10.7.4 / RFC 6191: a new SYN in TIME_WAIT reopens only when its sequence
// number is above RCV.NXT; an old one is answered with an ACK and TIME_WAIT stays.
#[test]
fn new_syn_in_time_wait_reopens_only_above_rcv_nxt() {
    let mut h = Harness::plain();
    into_time_wait(&mut h);
    h.stack.listen(h.local, 4).unwrap();
    h.inject_syn(4000); // below RCV.NXT (5002)
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!(a.ack, 5002);
    assert_eq!(h.state(), Some(TimeWait));
    h.inject_syn(90_000); // above RCV.NXT
    let sa = h.expect_one();
    assert!(sa.is(syn_ack()), "{sa:?}");
    assert_eq!(sa.ack, 90_001);
    assert_eq!(h.state(), Some(SynReceived));
}

// RFC 6191: with timestamps, a SYN whose TSval is newer reopens TIME_WAIT even when its
// sequence number is lower.
#[test]
fn new_syn_with_newer_timestamp_reopens_time_wait() {
    let mut h = Harness::new({
        let mut config = Config::deterministic(1);
        config.tcp_window_scaling = false;
        config
    });
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    assert!(s.options.timestamps.is_some(), "timestamps offered");
    let ts = |v: u32| TcpOptions {
        timestamps: Some(Timestamps { tsval: v, tsecr: 0 }),
        ..TcpOptions::default()
    };
    let synack = TcpOptions {
        mss: Some(1460),
        ..ts(100)
    };
    h.inject_opts(syn_ack(), 5000, s.seq + 1, 65535, &[], synack);
    h.outputs();
    h.stack.close(h.now, c).unwrap();
    h.outputs();
    h.inject_opts(fin_ack(), 5001, s.seq + 2, 65535, &[], ts(101));
    h.outputs();
    assert_eq!(h.state(), Some(TimeWait));
    h.stack.listen(h.local, 4).unwrap();
    let syn_opts = TcpOptions {
        mss: Some(1460),
        ..ts(500)
    };
    h.inject_opts(syn(), 10, 0, 65535, &[], syn_opts);
    let sa = h.expect_one();
    assert!(sa.is(syn_ack()), "{sa:?}");
}

// RFC 9293 3.10.7.4: a retransmitted FIN in TIME_WAIT is re-ACKed and restarts the full
// 2*MSL (several stacks forgot the restart).
#[test]
fn retransmitted_fin_in_time_wait_is_reacked_and_restarts_timer() {
    let mut h = Harness::plain();
    let iss = into_time_wait(&mut h);
    h.advance(Duration::from_secs(50));
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!((a.seq, a.ack), (iss + 2, 5002));
    h.advance(Duration::from_secs(59));
    assert_eq!(h.state(), Some(TimeWait), "restarted: 60 s from the re-ACK");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), None);
}

// RFC 1337: with tcp_rfc1337 (synack's default) a RST does not end TIME_WAIT early.
#[test]
fn rst_in_time_wait_does_not_end_it_with_rfc1337() {
    let mut h = Harness::plain();
    into_time_wait(&mut h);
    h.advance(Duration::from_secs(10));
    h.inject(rst(), 5002, 0, 0, &[]);
    h.expect_none();
    assert_eq!(h.state(), Some(TimeWait));
    // TIME_WAIT runs its full course: 60 s from when it began, RST or not.
    h.advance(Duration::from_millis(49_999));
    assert_eq!(h.state(), Some(TimeWait));
    h.advance(Duration::from_millis(1));
    assert_eq!(h.state(), None);
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_rfc1337 = false;
        config
    });
    into_time_wait(&mut h);
    h.inject(rst(), 5002, 0, 0, &[]);
    assert_eq!(h.state(), None, "Linux's default: the RST ends TIME_WAIT");
}

// tcp_fin_timeout: an orphan (the application closed) gives up FIN_WAIT_2 after 60 s.
#[test]
fn fin_wait_2_times_out_for_orphans_after_tcp_fin_timeout() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 5001, iss + 2, 65535, &[]);
    assert_eq!(h.state(), Some(FinWait2));
    h.advance(Duration::from_secs(59));
    assert_eq!(h.state(), Some(FinWait2));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.state(), None);
    assert!(h.transitions().ends_with(&[(FinWait2, Closed)]));
}

// After shutdown of the write side only, FIN_WAIT_2 waits for the peer as long as it likes.
#[test]
fn fin_wait_2_after_shutdown_only_waits_indefinitely() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.shutdown(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 5001, iss + 2, 65535, &[]);
    h.advance(Duration::from_secs(3600));
    assert_eq!(h.state(), Some(FinWait2));
    // ... and still receives data.
    h.inject(ack(), 5001, iss + 2, 65535, b"late");
    assert_eq!(h.expect_one().ack, 5005);
    let mut buf = [0u8; 8];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(4));
}

// close() with unsent data and a zero window moves to FIN_WAIT_1 at once; the FIN follows
// the data once the window opens (gVisor once stayed in ESTABLISHED forever).
#[test]
fn close_with_unsent_data_and_zero_window_enters_fin_wait_1_and_fin_follows_data() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject(syn_ack(), 5000, s.seq + 1, 0, &[]); // zero window
    h.expect_one();
    assert_eq!(h.stack.send(h.now, c, b"pending data"), Ok(12));
    h.stack.close(h.now, c).unwrap();
    assert_eq!(h.state(), Some(FinWait1));
    h.expect_none();
    // The persist timer probes the zero window.
    let probes = h.advance_collect(Duration::from_secs(2));
    assert!(!probes.is_empty(), "zero-window probe expected");
    // The window opens: data, then FIN.
    h.inject(ack(), 5001, s.seq + 1, 65535, &[]);
    let out = h.outputs();
    let payload: Vec<u8> = out.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(payload, b"pending data");
    assert!(out.last().unwrap().has(synack::wire::TcpFlags::FIN));
    assert_eq!(
        out.last().unwrap().seq + out.last().unwrap().seg_len(),
        s.seq + 1 + 12 + 1
    );
}

// The FIN with a peer that never opens its window: bounded by probing and the orphan retries.
#[test]
fn orphan_facing_a_zero_window_forever_is_eventually_aborted() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject(syn_ack(), 5000, s.seq + 1, 0, &[]);
    h.expect_one();
    h.stack.send(h.now, c, b"stuck").unwrap();
    h.stack.close(h.now, c).unwrap();
    for _ in 0..40 {
        for seg in h.advance_collect(Duration::from_secs(30)) {
            // The peer answers every probe: still a zero window.
            let _ = seg;
            h.inject(ack(), 5001, s.seq + 1, 0, &[]);
        }
    }
    assert_eq!(h.state(), None, "an orphan must not stay forever");
}

// RFC 9293 3.6 / RFC 2525 2.17: close() with unread received data sends RST.
#[test]
fn close_with_unread_data_sends_rst() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"unread");
    h.expect_one();
    h.stack.close(h.now, c).unwrap();
    let r = h.expect_one();
    assert!(r.has(synack::wire::TcpFlags::RST));
    assert_eq!(r.seq, iss + 1);
    assert_eq!(h.state(), None);
}

// RFC 1122 4.2.2.13: data arriving after the application closed is answered with RST.
#[test]
fn data_after_close_sends_rst() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 5001, iss + 2, 65535, b"more data");
    let r = h.expect_one();
    assert!(r.is(rst()));
    assert_eq!(h.state(), None);
}

// RFC 7323 3.2 says SHOULD drop; Linux does not: after timestamps are negotiated, an ACK
// without the option must still complete the handshake.
#[test]
fn ack_without_timestamp_still_completes_syn_received() {
    let mut h = Harness::new({
        let mut config = Config::deterministic(1);
        config.tcp_window_scaling = false;
        config
    });
    h.stack.listen(h.local, 4).unwrap();
    h.inject_syn_ts(1000, 42);
    let sa = h.expect_one();
    assert!(sa.options.timestamps.is_some(), "timestamps negotiated");
    h.inject(ack(), 1001, sa.seq + 1, 65535, &[]);
    assert_eq!(h.state(), Some(Established));
}

// RFC 6298 5.5 and tcp_retries2: data retransmissions back off exponentially and end
// with TimedOut when they run out.
#[test]
fn data_retransmissions_back_off_then_time_out() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_retries2 = 5;
        config
    });
    let (c, _) = h.established_active(5000);
    h.stack.send(h.now, c, b"hello").unwrap();
    let start = h.now;
    let sent = h.advance_collect(Duration::from_secs(600));
    let times: Vec<Duration> = sent
        .iter()
        .filter(|(_, s)| s.payload == b"hello")
        .map(|(t, _)| *t - start)
        .collect();
    assert_eq!(times.len(), 6, "original + 5 retransmissions: {times:?}");
    for w in times.windows(3) {
        let (a, b) = (w[1] - w[0], w[2] - w[1]);
        assert_eq!(b, a * 2, "exponential backoff: {times:?}");
    }
    assert_eq!(h.stack.error(c), Ok(Some(Error::TimedOut)));
}

// RFC 9293 3.10.7.4: an ACK for data never sent is answered with an ACK and dropped.
#[test]
fn ack_of_unsent_data_is_answered_and_dropped() {
    let mut h = Harness::plain();
    let (_, iss) = h.established_active(5000);
    h.inject(ack(), 5001, iss + 500, 65535, &[]);
    let a = h.expect_one();
    assert_eq!((a.seq, a.ack), (iss + 1, 5001));
    assert_eq!(h.state(), Some(Established));
}
