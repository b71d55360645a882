//! Every transition of the RFC 9293 section 3.3.2 state diagram, each driven by hand-made
//! segments from a scripted peer, checking the state reached and the segment sent.

mod common;

use std::time::Duration;

use common::*;
use synack::{Error, Event, TcpState::*};

// RFC 9293 3.10.1: OPEN (active) in CLOSED: send SYN, enter SYN_SENT.
#[test]
fn closed_to_syn_sent_on_connect_sends_syn() {
    let mut h = Harness::plain();
    h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    assert!(s.is(syn()));
    assert_eq!(s.options.mss, Some(1460));
    assert_eq!(h.state(), Some(SynSent));
    assert_eq!(h.transitions(), vec![(Closed, SynSent)]);
}

// RFC 9293 3.10.7.2: LISTEN + SYN: send SYN,ACK with ACK = SEG.SEQ+1, enter SYN_RECEIVED.
#[test]
fn listen_to_syn_received_on_syn_sends_syn_ack() {
    let mut h = Harness::plain();
    let sa = h.passive_open(1000);
    assert_eq!(sa.ack, 1001);
    assert_eq!(h.state(), Some(SynReceived));
}

// RFC 9293 3.10.7.3: SYN_SENT + SYN,ACK acknowledging our SYN: send ACK, enter ESTABLISHED.
#[test]
fn syn_sent_to_established_on_syn_ack_sends_ack() {
    let mut h = Harness::plain();
    let h_conn = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject(syn_ack(), 5000, s.seq + 1, 65535, &[]);
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!((a.seq, a.ack), (s.seq + 1, 5001));
    assert_eq!(h.state(), Some(Established));
    assert!(h.events.contains(&Event::Connected(h_conn)));
}

// RFC 9293 3.10.7.3: SYN_SENT + SYN without ACK (simultaneous open): send SYN,ACK, enter SYN_RECEIVED.
#[test]
fn syn_sent_to_syn_received_on_bare_syn_simultaneous_open() {
    let mut h = Harness::plain();
    h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject_syn(7000);
    let sa = h.expect_one();
    assert!(sa.is(syn_ack()));
    assert_eq!(
        (sa.seq, sa.ack),
        (s.seq, 7001),
        "the SYN,ACK reuses our ISS"
    );
    assert_eq!(h.state(), Some(SynReceived));
    // RFC 9293 3.10.7.4: the ACK of our SYN completes it.
    h.inject(ack(), 7001, s.seq + 1, 65535, &[]);
    assert_eq!(h.state(), Some(Established));
}

// RFC 9293 3.10.4: CLOSE in SYN_SENT: delete the TCB, enter CLOSED.
#[test]
fn syn_sent_to_closed_on_close() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    h.expect_one();
    h.stack.close(h.now, c).unwrap();
    h.expect_none();
    assert_eq!(h.state(), None);
    assert!(h.transitions().contains(&(SynSent, Closed)));
}

// RFC 9293 3.10.7.4: SYN_RECEIVED + ACK of our SYN: enter ESTABLISHED (ready for accept()).
#[test]
fn syn_received_to_established_on_ack_of_syn() {
    let mut h = Harness::plain();
    let sa = h.passive_open(1000);
    h.inject(ack(), 1001, sa.seq + 1, 65535, &[]);
    assert_eq!(h.state(), Some(Established));
    h.expect_none();
    let c = h.accept_any();
    assert_eq!(h.stack.state(c).unwrap(), Established);
}

// RFC 9293 3.10.7.4: RST in SYN_RECEIVED of a passive open: back to LISTEN (the
// listener keeps listening; the embryonic connection is gone).
#[test]
fn syn_received_returns_to_listen_on_rst() {
    let mut h = Harness::plain();
    h.passive_open(1000);
    h.inject(rst(), 1001, 0, 0, &[]);
    assert_eq!(h.state(), None);
    assert!(h.transitions().contains(&(SynReceived, Closed)));
    h.expect_none();
    h.inject_syn(9000);
    assert!(
        h.expect_one().is(syn_ack()),
        "the listener still answers SYNs"
    );
}

// RFC 9293 3.10.4: CLOSE in SYN_RECEIVED: queued until our SYN is acknowledged, then
// the FIN goes out and the connection is in FIN_WAIT_1.
#[test]
fn syn_received_to_fin_wait_1_on_close() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject_syn(7000);
    h.expect_one();
    h.stack.close(h.now, c).unwrap();
    h.inject(ack(), 7001, s.seq + 1, 65535, &[]);
    assert_eq!(h.state(), Some(FinWait1));
    assert!(h.transitions().contains(&(SynReceived, FinWait1)));
    let f = h.expect_one();
    assert!(f.is(fin_ack()));
    assert_eq!(f.seq, s.seq + 1);
}

// RFC 9293 3.10.4: CLOSE in ESTABLISHED: send FIN, enter FIN_WAIT_1.
#[test]
fn established_to_fin_wait_1_on_close_sends_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    let f = h.expect_one();
    assert!(f.is(fin_ack()));
    assert_eq!((f.seq, f.ack), (iss + 1, 5001));
    assert_eq!(h.state(), Some(FinWait1));
}

// RFC 9293 3.10.7.4 eighth: FIN in ESTABLISHED: ACK it, enter CLOSE_WAIT; reads see EOF.
#[test]
fn established_to_close_wait_on_fin_acks_it() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!(a.ack, 1002);
    assert_eq!(h.state(), Some(CloseWait));
    assert_eq!(h.stack.recv(h.now, c, &mut [0; 10]), Ok(0));
}

// RFC 9293 3.10.7.4 fifth: ACK of our FIN in FIN_WAIT_1: enter FIN_WAIT_2.
#[test]
fn fin_wait_1_to_fin_wait_2_on_ack_of_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.shutdown(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 5001, iss + 2, 65535, &[]);
    assert_eq!(h.state(), Some(FinWait2));
    h.expect_none();
}

// RFC 9293 3.10.7.4 eighth: FIN in FIN_WAIT_1 (ours not yet ACKed): ACK it, enter CLOSING.
#[test]
fn fin_wait_1_to_closing_on_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(fin_ack(), 5001, iss + 1, 65535, &[]);
    let a = h.expect_one();
    assert_eq!((a.seq, a.ack), (iss + 2, 5002));
    assert_eq!(h.state(), Some(Closing));
}

// RFC 9293 3.10.7.4: FIN that also acknowledges our FIN in FIN_WAIT_1: straight to TIME_WAIT.
#[test]
fn fin_wait_1_to_time_wait_on_fin_acking_our_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    assert_eq!(h.expect_one().ack, 5002);
    assert_eq!(h.state(), Some(TimeWait));
    assert!(h
        .transitions()
        .ends_with(&[(FinWait1, FinWait2), (FinWait2, TimeWait)]));
}

// RFC 9293 3.10.7.4 eighth: FIN in FIN_WAIT_2: ACK it, enter TIME_WAIT.
#[test]
fn fin_wait_2_to_time_wait_on_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 5001, iss + 2, 65535, &[]);
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    let a = h.expect_one();
    assert_eq!((a.seq, a.ack), (iss + 2, 5002));
    assert_eq!(h.state(), Some(TimeWait));
}

// RFC 9293 3.10.7.4 fifth: ACK of our FIN in CLOSING: enter TIME_WAIT, whose timer runs.
#[test]
fn closing_to_time_wait_on_ack_of_fin_and_the_timer_runs() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(fin_ack(), 5001, iss + 1, 65535, &[]);
    h.expect_one();
    h.inject(ack(), 5002, iss + 2, 65535, &[]);
    assert_eq!(h.state(), Some(TimeWait));
    h.advance(Duration::from_secs(59));
    assert_eq!(h.state(), Some(TimeWait));
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.state(),
        None,
        "TIME_WAIT entered from CLOSING must expire after 2*MSL"
    );
}

// RFC 9293 3.10.4: CLOSE in CLOSE_WAIT: send FIN, enter LAST_ACK.
#[test]
fn close_wait_to_last_ack_on_close_sends_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    h.expect_one();
    h.stack.close(h.now, c).unwrap();
    let f = h.expect_one();
    assert!(f.is(fin_ack()));
    assert_eq!((f.seq, f.ack), (iss + 1, 1002));
    assert_eq!(h.state(), Some(LastAck));
}

// RFC 9293 3.10.7.4 fifth: ACK of our FIN in LAST_ACK: delete the TCB, enter CLOSED.
#[test]
fn last_ack_to_closed_on_ack_of_fin() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    h.expect_one();
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(ack(), 1002, iss + 2, 65535, &[]);
    assert_eq!(h.state(), None);
    assert!(h
        .transitions()
        .ends_with(&[(CloseWait, LastAck), (LastAck, Closed)]));
    h.expect_none();
}

// RFC 9293 3.10.8: the time-wait timeout (2*MSL, 60 s as on Linux) deletes the TCB.
#[test]
fn time_wait_to_closed_after_two_msl() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.expect_one();
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    h.expect_one();
    assert_eq!(
        h.stack.time_wait_count(),
        1,
        "an orphan in TIME_WAIT lives in the compact table"
    );
    h.advance(Duration::from_millis(59_999));
    assert_eq!(h.state(), Some(TimeWait));
    h.advance(Duration::from_millis(1));
    assert_eq!(h.state(), None);
    assert_eq!(h.stack.time_wait_count(), 0);
    assert!(h.transitions().ends_with(&[(TimeWait, Closed)]));
}

// RFC 9293 3.10.7.3: RST in SYN_SENT with an acceptable ACK: the connection is refused.
#[test]
fn syn_sent_to_closed_on_rst_with_acceptable_ack_is_refused() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject(rst_ack(), 0, s.seq + 1, 0, &[]);
    assert_eq!(h.stack.state(c), Ok(Closed));
    assert_eq!(h.stack.error(c), Ok(Some(Error::ConnectionRefused)));
    assert!(h.events.contains(&Event::Error {
        conn: c,
        error: Error::ConnectionRefused
    }));
    h.expect_none();
}

// RFC 9293 3.10.7.3: in SYN_SENT, a RST without an acceptable ACK is dropped.
#[test]
fn syn_sent_ignores_rst_without_ack() {
    let mut h = Harness::plain();
    h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    h.expect_one();
    h.inject(rst(), 0, 0, 0, &[]);
    assert_eq!(h.state(), Some(SynSent));
    h.expect_none();
}

// RFC 9293 3.10.7.3: in SYN_SENT, an ACK of the wrong number gets <SEQ=SEG.ACK><CTL=RST>.
#[test]
fn syn_sent_bad_ack_gets_reset_with_seq_equal_to_seg_ack() {
    let mut h = Harness::plain();
    h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    h.inject(ack(), 4000, s.seq + 1000, 65535, &[]);
    let r = h.expect_one();
    assert!(r.is(rst()));
    assert_eq!(r.seq, s.seq + 1000);
    assert_eq!(h.state(), Some(SynSent));
}

// RFC 9293 3.8.3 and Linux tcp_syn_retries=6: SYNs at 0, 1, 3, 7, 15, 31, 63 s, then
// connect() fails with TimedOut at 127 s.
#[test]
fn syn_sent_to_closed_when_syn_retries_run_out() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let start = h.now;
    let sent = h.advance_collect(Duration::from_secs(200));
    let times: Vec<u64> = sent
        .iter()
        .filter(|(_, s)| s.is(syn()))
        .map(|(t, _)| (*t - start).as_secs())
        .collect();
    assert_eq!(times, vec![0, 1, 3, 7, 15, 31, 63]);
    assert_eq!(h.stack.state(c), Ok(Closed));
    assert_eq!(h.stack.error(c), Ok(Some(Error::TimedOut)));
    let failed_at = h.events.iter().find_map(|e| match e {
        Event::StateChanged { to: Closed, at, .. } => Some(*at - start),
        _ => None,
    });
    assert_eq!(failed_at, Some(Duration::from_secs(127)));
}

// RFC 9293 3.10.7.4 second + RFC 5961 3.2: RST handling in every synchronized state:
// exact sequence number resets, in-window but inexact gets a challenge ACK, outside is dropped.
#[test]
fn rst_in_every_synchronized_state_follows_rfc5961() {
    for target in [Established, FinWait1, FinWait2, CloseWait, Closing, LastAck] {
        for case in ["exact", "in_window", "outside"] {
            let mut h = Harness::plain();
            let (c, iss) = h.established_active(5000);
            let mut rcv_nxt = 5001;
            match target {
                Established => {}
                FinWait1 => {
                    h.stack.close(h.now, c).unwrap();
                }
                FinWait2 => {
                    h.stack.shutdown(h.now, c).unwrap();
                    h.outputs();
                    h.inject(ack(), 5001, iss + 2, 65535, &[]);
                }
                CloseWait => {
                    h.inject(fin_ack(), 5001, iss + 1, 65535, &[]);
                    rcv_nxt = 5002;
                }
                Closing => {
                    h.stack.close(h.now, c).unwrap();
                    h.outputs();
                    h.inject(fin_ack(), 5001, iss + 1, 65535, &[]);
                    rcv_nxt = 5002;
                }
                LastAck => {
                    h.inject(fin_ack(), 5001, iss + 1, 65535, &[]);
                    h.outputs();
                    h.stack.close(h.now, c).unwrap();
                    rcv_nxt = 5002;
                }
                _ => unreachable!(),
            }
            h.outputs();
            assert_eq!(h.state(), Some(target));
            let seq = match case {
                "exact" => rcv_nxt,
                "in_window" => rcv_nxt + 100,
                _ => rcv_nxt + 70_000,
            };
            h.inject(rst(), seq, 0, 0, &[]);
            let out = h.outputs();
            match case {
                "exact" => {
                    assert_eq!(h.state(), None, "{target}: exact RST must close");
                    assert!(out.is_empty(), "{target}: never answer a RST: {out:?}");
                }
                "in_window" => {
                    assert_eq!(
                        h.state(),
                        Some(target),
                        "{target}: inexact RST must not close"
                    );
                    assert_eq!(out.len(), 1, "{target}: challenge ACK expected");
                    assert!(out[0].is(ack()) && out[0].ack == rcv_nxt);
                }
                _ => {
                    assert_eq!(h.state(), Some(target));
                    assert!(
                        out.is_empty(),
                        "{target}: out-of-window RST is dropped silently: {out:?}"
                    );
                }
            }
        }
    }
}

// RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK and changes nothing.
#[test]
fn syn_in_established_gets_challenge_ack() {
    let mut h = Harness::plain();
    let (_, iss) = h.established_active(5000);
    h.inject_syn(123_456);
    let a = h.expect_one();
    assert!(a.is(ack()));
    assert_eq!((a.seq, a.ack), (iss + 1, 5001));
    assert_eq!(h.state(), Some(Established));
    assert_eq!(h.stack.stats().challenge_acks, 1);
}

// RFC 9293 3.10.7.4 first: an unacceptable segment is answered with an ACK and dropped.
#[test]
fn segment_outside_the_window_is_acked_and_dropped() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.inject(ack(), 5001 + 100_000, 0, 65535, b"junk");
    let a = h.expect_one();
    assert_eq!(a.ack, 5001);
    assert_eq!(h.stack.recv(h.now, c, &mut [0; 8]), Err(Error::WouldBlock));
    assert_eq!(h.stack.stats().dropped("not_acceptable"), 1);
}
