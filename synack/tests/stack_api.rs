//! The application's view of the stack: abort, address conflicts, the listen backlog,
//! MSS negotiation and flow control by the advertised window.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use synack::wire::TcpOptions;
use synack::{Error, TcpState::*};

// RFC 9293 3.10.5 ABORT: send RST, delete the connection, nothing more is sent.
#[test]
fn abort_sends_rst_and_frees_the_connection() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.send(h.now, c, b"queued but never sent?").unwrap();
    h.outputs();
    h.stack.abort(h.now, c).unwrap();
    let r = h.expect_one();
    assert!(r.has(synack::wire::TcpFlags::RST));
    assert_eq!(r.ack, 5001);
    assert_eq!(r.seq, iss + 1 + 22, "from the highest sequence number sent");
    assert_eq!(h.state(), None);
    assert_eq!(
        h.stack.state(c),
        Err(Error::InvalidHandle),
        "the handle is released"
    );
    h.advance(std::time::Duration::from_secs(10));
    h.expect_none();
}

// A peer's RST of an established connection surfaces as ConnectionReset on the handle.
#[test]
fn peer_reset_is_reported_as_connection_reset() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.inject(rst(), 5001, 0, 0, &[]);
    assert_eq!(
        h.stack.recv(h.now, c, &mut [0; 4]),
        Err(Error::ConnectionReset)
    );
    assert_eq!(h.stack.send(h.now, c, b"x"), Err(Error::ConnectionReset));
}

#[test]
fn listening_twice_on_one_port_is_address_in_use() {
    let mut h = Harness::plain();
    h.stack.listen(h.local, 4).unwrap();
    assert_eq!(h.stack.listen(h.local, 4), Err(Error::AddressInUse));
    let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
    assert_eq!(h.stack.listen(any, 4), Err(Error::AddressInUse));
    let foreign: SocketAddr = "198.19.0.9:80".parse().unwrap();
    assert_eq!(h.stack.listen(foreign, 4), Err(Error::AddressNotAvailable));
}

// As std and Linux: binding a listener to port 0 picks a free ephemeral port.
#[test]
fn listening_on_port_zero_picks_a_free_ephemeral_port() {
    let mut h = Harness::plain();
    let zero: SocketAddr = format!("{LOCAL_IP}:0").parse().unwrap();
    let a = h.stack.listen(zero, 4).unwrap();
    let a_addr = h.stack.listener_addr(a).unwrap();
    assert_eq!(a_addr.ip(), zero.ip());
    assert!(
        h.stack.config().ephemeral_ports.contains(&a_addr.port()),
        "{a_addr} is not in the ephemeral range"
    );
    // A second one gets another port; an unspecified address works too.
    let b = h.stack.listen(zero, 4).unwrap();
    assert_ne!(h.stack.listener_addr(b).unwrap().port(), a_addr.port());
    let any = h.stack.listen("0.0.0.0:0".parse().unwrap(), 4).unwrap();
    let any_port = h.stack.listener_addr(any).unwrap().port();
    assert!(any_port != 0 && any_port != a_addr.port());
    // The chosen port really listens: a SYN to it gets a SYN-ACK.
    h.local = a_addr;
    h.inject_syn(7000);
    let synack = h.expect_one();
    assert!(synack.is(syn_ack()));
    assert_eq!(synack.src, a_addr);
}

// Nothing listens on port 0 itself: a SYN to it is answered with a RST (RFC 9293
// 3.10.7.1), even while listeners bound to "port 0" exist.
#[test]
fn a_syn_to_port_zero_is_reset() {
    let mut h = Harness::plain();
    h.stack.listen("0.0.0.0:0".parse().unwrap(), 4).unwrap();
    h.local = format!("{LOCAL_IP}:0").parse().unwrap();
    h.inject_syn(7000);
    let r = h.expect_one();
    assert!(r.is(rst_ack()), "{r:?}");
    assert_eq!(r.ack, 7001);
}

// Connecting from a 4-tuple that is still in TIME_WAIT is refused (no tcp_tw_reuse).
#[test]
fn connecting_from_a_tuple_in_time_wait_is_address_in_use() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.stack.close(h.now, c).unwrap();
    h.outputs();
    h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
    h.outputs();
    assert_eq!(h.state(), Some(TimeWait));
    assert_eq!(
        h.stack.connect_from(h.now, h.local, h.peer).err(),
        Some(Error::AddressInUse)
    );
    // An ephemeral port is picked around it.
    let c2 = h.stack.connect(h.now, h.peer).unwrap();
    assert_ne!(h.stack.local_addr(c2).unwrap(), h.local);
}

// The accept queue is bounded by the backlog as on Linux (sk_acceptq_is_full: a
// backlog of N holds N + 1): once full, new SYNs are not answered.
#[test]
fn full_accept_queue_drops_new_syns() {
    let mut h = Harness::plain();
    h.stack.listen(h.local, 1).unwrap();
    for (port, isn) in [(40000, 100), (40001, 200)] {
        h.peer = SocketAddr::new(h.peer.ip(), port);
        h.inject_syn(isn);
        let sa = h.expect_one();
        h.inject(ack(), isn + 1, sa.seq + 1, 65535, &[]);
        assert_eq!(h.state(), Some(Established));
    }
    // A third client while neither is accepted.
    h.peer = SocketAddr::new(h.peer.ip(), 40002);
    h.inject_syn(300);
    h.expect_none();
    assert_eq!(h.state(), None);
    assert_eq!(h.stack.stats().dropped("listen_overflow"), 1);
}

// RFC 9293 3.7.1: segments never carry more than the peer's MSS.
#[test]
fn data_segments_respect_the_peers_mss() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    let opts = TcpOptions {
        mss: Some(500),
        ..TcpOptions::default()
    };
    h.inject_opts(syn_ack(), 5000, s.seq + 1, 65535, &[], opts);
    h.outputs();
    h.stack.send(h.now, c, &[7u8; 3000]).unwrap();
    let segs = h.outputs();
    assert!(
        segs.iter().all(|s| s.payload.len() <= 500),
        "{:?}",
        segs.iter().map(|s| s.payload.len()).collect::<Vec<_>>()
    );
    assert_eq!(segs.iter().map(|s| s.payload.len()).sum::<usize>(), 3000);
}

// RFC 9293 3.8.6: no more unacknowledged data than the peer's window; more as it opens.
#[test]
fn sender_stays_within_the_advertised_window() {
    let mut h = Harness::plain();
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    let s = h.expect_one();
    let opts = TcpOptions {
        mss: Some(500),
        ..TcpOptions::default()
    };
    h.inject_opts(syn_ack(), 5000, s.seq + 1, 1000, &[], opts);
    h.outputs();
    h.stack.send(h.now, c, &[1u8; 5000]).unwrap();
    let sent: usize = h.outputs().iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 1000);
    // The peer acknowledges 1000 bytes and offers 2000 more.
    h.inject(ack(), 5001, s.seq + 1 + 1000, 2000, &[]);
    let sent: usize = h.outputs().iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 2000);
}

// A receiver that does not read fills its buffer; the window it advertises shrinks to zero
// and reopens once the application reads.
#[test]
fn unread_data_closes_our_window_and_reading_reopens_it() {
    let mut h = Harness::plain(); // 65535-byte receive buffer
    let (c, iss) = h.established_passive(1000);
    let mut seq = 1001;
    let mut last_win = u16::MAX;
    for _ in 0..40 {
        h.inject(ack(), seq, iss + 1, 65535, &[0u8; 1460]);
        seq += 1460;
        if let Some(a) = h.outputs().last() {
            last_win = a.win;
        }
    }
    assert_eq!(
        last_win as usize,
        65535 - 40 * 1460,
        "window = free buffer space"
    );
    let mut buf = vec![0u8; 65535];
    let n = h.stack.recv(h.now, c, &mut buf).unwrap();
    assert_eq!(n, 40 * 1460);
    let update = h.expect_one();
    assert_eq!(update.win, 65535, "a window update follows the read");
}

// The TCP_INFO-like snapshot: what the observability tools display.
#[test]
fn connection_info_reports_tcp_info_like_statistics() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    h.advance(std::time::Duration::from_millis(300));
    h.stack.send(h.now, c, &[7u8; 3000]).unwrap();
    let segs = h.outputs();
    assert_eq!(segs.iter().map(|s| s.payload.len()).sum::<usize>(), 3000);
    h.advance(std::time::Duration::from_millis(20));
    h.inject(ack(), 5001, iss + 1 + 3000, 65535, b"reply");
    let info = h.stack.info(h.now, c).unwrap();
    assert_eq!(info.state, Established);
    assert_eq!(
        (info.bytes_sent, info.bytes_acked, info.bytes_received),
        (3000, 3000, 5)
    );
    assert_eq!(info.retransmits, 0);
    assert_eq!(info.time_in_state, std::time::Duration::from_millis(320));
    assert_eq!(info.congestion_control, synack::CongestionControl::Cubic);
    assert!(info.cwnd.unwrap() >= 10 * 536, "IW10: {:?}", info.cwnd);
    assert!(info.srtt.is_some() && info.rto.is_some());
    assert!(!info.sack, "plain_config does not offer SACK");
}

// RFC 7661 2 (Linux's tcp_is_cwnd_limited): an application that sends a little each
// round trip never fills the congestion window, so the window does not grow on the ACKs
// of what it sent; a sender that fills it does grow it.
#[test]
fn the_congestion_window_grows_only_while_it_limits_sending() {
    for fill in [false, true] {
        let mut h = Harness::plain();
        let (c, iss) = h.established_active(5000);
        let initial = h.stack.info(h.now, c).unwrap().cwnd.unwrap();
        let mut acked = iss + 1;
        for _ in 0..100 {
            // Two segments a round trip, or as many as the window allows.
            let want = if fill { 1 << 20 } else { 2 * 536 };
            let _ = h.stack.send(h.now, c, &vec![7u8; want]);
            for s in h.outputs() {
                acked = acked.max(s.seq + s.payload.len() as u32);
            }
            h.advance(std::time::Duration::from_millis(20));
            h.inject(ack(), 5001, acked, 65535, &[]);
        }
        let cwnd = h.stack.info(h.now, c).unwrap().cwnd.unwrap();
        if fill {
            assert!(
                cwnd > 4 * initial,
                "a window-limited sender: {initial} -> {cwnd}"
            );
        } else {
            assert_eq!(cwnd, initial, "an application-limited sender's window grew");
        }
    }
}

// RFC 1122 4.2.3.6: keepalive probes an idle connection; an answer resets the count;
// after the set number of unanswered probes the connection is reset and reported dead.
#[test]
fn keepalive_probes_an_idle_peer_and_gives_up_when_it_is_gone() {
    use std::time::Duration;
    use synack::Keepalive;
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    let start = h.now;
    // Silence: the first probe after 10 s, with SND.UNA - 1 so the peer must answer.
    let sent = h.advance_collect(Duration::from_secs(10));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0 - start, Duration::from_secs(10));
    assert_eq!((sent[0].1.seq, sent[0].1.payload.len()), (iss, 0));
    // The peer answers: the count starts again; 10 s of silence before the next probe.
    h.inject(ack(), 5001, iss + 1, 65535, &[]);
    let answered = h.now;
    let sent = h.advance_collect(Duration::from_secs(20));
    let times: Vec<Duration> = sent.iter().map(|(t, _)| *t - answered).collect();
    let probes: Vec<Duration> = [10, 12, 14].map(Duration::from_secs).to_vec();
    assert_eq!(&times[..3], &probes[..], "{sent:?}");
    // Three unanswered probes: at 16 s the connection is reset and fails with TimedOut.
    assert!(sent[3].1.has(synack::wire::TcpFlags::RST), "{sent:?}");
    assert_eq!(times[3], Duration::from_secs(16));
    assert_eq!(h.stack.error(c), Ok(Some(Error::TimedOut)));
}

// As Linux: turning keepalive on for a connection already idle longer than the idle
// time waits the whole idle time from then, rather than probing at once.
#[test]
fn keepalive_turned_on_late_waits_its_idle_time_from_then() {
    use std::time::Duration;
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    h.advance(Duration::from_secs(100));
    let ka = synack::Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        probes: 3,
    };
    h.stack.set_keepalive(h.now, c, Some(ka)).unwrap();
    let start = h.now;
    let sent = h.advance_collect(Duration::from_secs(10));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0 - start, Duration::from_secs(10));
}

#[test]
fn keepalive_is_off_unless_asked_for() {
    let mut h = Harness::plain();
    let (c, _) = h.established_active(5000);
    assert!(h
        .advance_collect(std::time::Duration::from_secs(3 * 3600))
        .is_empty());
    assert_eq!(h.stack.state(c), Ok(Established));
}

// Zero-copy: the application writes into, and reads from, the stack's own buffers.
#[test]
fn send_with_and_recv_with_use_the_stack_buffers_directly() {
    let mut h = Harness::plain();
    let (c, iss) = h.established_active(5000);
    let n = h
        .stack
        .send_with(h.now, c, 5, |room| {
            room[..5].copy_from_slice(b"hello");
            5
        })
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(h.expect_one().payload, b"hello");
    h.inject(ack(), 5001, iss + 6, 65535, b"world!");
    let mut seen = Vec::new();
    let took = h
        .stack
        .recv_with(h.now, c, |a, b| {
            seen.extend_from_slice(a);
            seen.extend_from_slice(b);
            4
        })
        .unwrap();
    assert_eq!((took, seen.as_slice()), (4, &b"world!"[..]));
    let mut rest = [0u8; 8];
    assert_eq!(
        h.stack.recv(h.now, c, &mut rest),
        Ok(2),
        "only what was taken is gone"
    );
    assert_eq!(&rest[..2], b"d!");
}

// SO_SNDBUF / SO_RCVBUF per connection: the send buffer bounds what a write takes; the
// receive buffer, set before the SYN leaves, decides the window scale it offers.
#[test]
fn buffers_sized_per_connection_bound_writes_and_set_the_window_scale() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_window_scaling = true;
        config
    });
    let c = h.stack.connect_from(h.now, h.local, h.peer).unwrap();
    h.stack
        .set_buffers(h.now, c, Some(1000), Some(8 << 20))
        .unwrap();
    let syn = h.expect_one();
    // 8 MiB needs a shift of 8 (65535 << 8 >= 8 MiB > 65535 << 7).
    assert_eq!(syn.options.window_scale, Some(8));
    assert_eq!(h.stack.send(h.now, c, &[1u8; 5000]), Ok(1000));
    assert_eq!(h.stack.send(h.now, c, &[1u8; 10]), Err(Error::WouldBlock));
}

// Receive-buffer autotuning (Linux's tcp_moderate_rcvbuf): an application that reads
// everything a round trip brings gets a larger window; one that sized its buffer with
// SO_RCVBUF (set_buffers) keeps it.
#[test]
fn the_receive_window_grows_with_reading_unless_the_application_sized_the_buffer() {
    for locked in [false, true] {
        let mut h = Harness::new({
            let mut config = plain_config();
            config.recv_buffer = 16 * 1024;
            config
        });
        let (c, iss) = h.established_passive(1000);
        if locked {
            h.stack
                .set_buffers(h.now, c, None, Some(16 * 1024))
                .unwrap();
        }
        let (mut seq, mut window, mut largest) = (1001, 16 * 1024, 0);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..8 {
            // A round trip's worth: what the window allows, in full segments; the
            // application reads it all; the window it then advertises is the next one.
            for _ in 0..window / 1460 {
                h.inject(ack(), seq, iss + 1, 65535, &[7u8; 1460]);
                seq += 1460;
            }
            h.outputs();
            h.now += Duration::from_millis(10);
            while h.stack.recv(h.now, c, &mut buf).is_ok_and(|n| n > 0) {}
            if let Some(update) = h.outputs().last() {
                window = usize::from(update.win);
                largest = largest.max(update.win);
            }
        }
        if locked {
            assert!(
                largest as usize <= 16 * 1024,
                "a sized buffer grew: {largest}"
            );
        } else {
            assert_eq!(largest, 65535, "the window grew to what the field carries");
        }
    }
}

// Without window scaling the window field stops at 65535: a read that frees buffer space
// beyond that sends no window update, since the peer could not be told anything new
// (found by the drill corpus).
#[test]
fn no_window_update_for_room_the_window_field_cannot_carry() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.recv_buffer = 256 * 1024;
        config
    });
    let (c, iss) = h.established_passive(1000);
    h.inject(ack(), 1001, iss + 1, 65535, b"0123456789");
    assert_eq!(h.expect_one().ack, 1011);
    let mut buf = [0u8; 64];
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(10));
    h.expect_none();
}

// The `ss` view: a listener, a connection the peer closed and the application did not
// (CLOSE_WAIT, ageing), each with queues and timers; the per-state summary counts them.
#[test]
fn snapshot_lists_listener_and_connections_with_their_age_and_summary() {
    let mut h = Harness::plain();
    let (_c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    h.outputs();
    assert_eq!(h.state(), Some(CloseWait));
    h.advance(Duration::from_secs(5));
    let snap = h.stack.snapshot(h.now);
    let listener = snap
        .iter()
        .find(|s| s.state == Listen)
        .expect("the listener");
    assert_eq!((listener.remote, listener.recv_q), (None, 0));
    let cw = snap
        .iter()
        .find(|s| s.state == CloseWait)
        .expect("the connection");
    assert_eq!(cw.remote, Some(h.peer));
    assert!(cw.age.unwrap() >= Duration::from_secs(5), "{:?}", cw.age);
    assert!(cw.info.is_some());
    let summary = h.stack.state_summary(h.now);
    let line = summary.iter().find(|s| s.state == CloseWait).unwrap();
    assert_eq!(line.count, 1);
    assert_eq!(line.oldest, cw.age);
}

// Lifecycle diagnostics: a connection left in CLOSE_WAIT past the threshold raises one
// warning naming the port and the wait; the snapshot says the same.
#[test]
fn close_wait_left_by_the_application_raises_one_warning() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.warn_close_wait = Duration::from_secs(10);
        config
    });
    let (_c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    h.outputs();
    for _ in 0..30 {
        h.advance(Duration::from_secs(1));
    }
    let warnings: Vec<(bool, String)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            synack::Event::Warning { conn, message } => Some((conn.is_some(), message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let (for_conn, message) = &warnings[0];
    assert!(*for_conn);
    assert!(
        message.contains("CLOSE_WAIT for 10 s")
            && message.contains(&format!("port {}", h.local.port())),
        "{message}"
    );
    let snap = h.stack.snapshot(h.now);
    let cw = snap.iter().find(|s| s.state == CloseWait).unwrap();
    assert!(cw
        .warning
        .as_deref()
        .is_some_and(|w| w.contains("has not called close()")));
}

// FIN_WAIT_1 whose FIN goes unanswered: the warning comes with the third retransmission.
#[test]
fn an_unanswered_fin_raises_a_peer_unreachable_warning() {
    let mut h = Harness::plain();
    let (c, _iss) = h.established_passive(1000);
    h.stack.close(h.now, c).unwrap();
    h.outputs();
    for _ in 0..200 {
        h.advance(Duration::from_millis(100));
    }
    let message = h
        .events
        .iter()
        .find_map(|e| match e {
            synack::Event::Warning { message, .. } => Some(message.clone()),
            _ => None,
        })
        .expect("a warning");
    assert!(
        message.contains("FIN_WAIT_1") && message.contains("3 more times"),
        "{message}"
    );
}

// The counters and per-state gauges in Prometheus' text format.
#[test]
fn metrics_are_exported_in_prometheus_text_format() {
    let mut h = Harness::plain();
    let (_c, iss) = h.established_passive(1000);
    h.inject(fin_ack(), 1001, iss + 1, 65535, &[]);
    h.outputs();
    h.inject(rst(), 99_999, 0, 0, &[]);
    let text = h.stack.stats().prometheus(&h.stack.state_summary(h.now));
    for line in [
        "# TYPE synack_segments_in_total counter",
        "synack_connections_accepted_total 1",
        "synack_connections_established_total 1",
        "synack_resets_received_total 1",
        "# TYPE synack_sockets gauge",
        "synack_sockets{state=\"CLOSE_WAIT\"} 1",
        "synack_sockets{state=\"LISTEN\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(text.contains("synack_drops_total{reason="), "{text}");
}

// The TIME_WAIT table nearing tcp_max_tw_buckets raises one stack-wide warning, as it
// passes 90 % of the limit.
#[test]
fn a_time_wait_table_near_its_limit_raises_one_warning() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_max_tw_buckets = 10;
        config
    });
    for i in 0..10u16 {
        h.peer = SocketAddr::new(h.peer.ip(), 40000 + i);
        let (c, iss) = h.established_active(5000);
        h.stack.close(h.now, c).unwrap();
        h.outputs();
        h.inject(fin_ack(), 5001, iss + 2, 65535, &[]);
        h.outputs();
        assert_eq!(h.stack.time_wait_count(), usize::from(i) + 1);
    }
    let warnings: Vec<String> = h
        .events
        .iter()
        .filter_map(|e| match e {
            synack::Event::Warning {
                conn: None,
                message,
            } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("9 connections in TIME_WAIT, 90%"),
        "{}",
        warnings[0]
    );
}

// How a multi-queue interface finds the stack a packet belongs to: a segment of one of
// its connections, or an ICMP error quoting one, is its; anything else is no one's flow.
#[test]
fn has_flow_tells_a_stack_its_own_segments_and_icmp_errors_from_others() {
    use synack::wire::{self, IcmpRepr, SeqNum, TcpFlags, TcpOptions, TcpRepr};
    let mut h = Harness::plain();
    h.established_active(5000);
    let segment = |from: SocketAddr, to: SocketAddr| {
        let repr = TcpRepr {
            src_port: from.port(),
            dst_port: to.port(),
            seq: SeqNum::new(1),
            ack: SeqNum::new(1),
            flags: TcpFlags::ACK,
            window: 100,
            urgent: 0,
            options: TcpOptions::default(),
            payload: b"x",
        };
        wire::emit_tcp_packet(from.ip(), to.ip(), 64, &repr).unwrap()
    };
    let ours = segment(h.peer, h.local);
    assert_eq!(h.stack.has_flow(&ours), Some(true));
    let other_port = SocketAddr::new(h.peer.ip(), h.peer.port() + 1);
    assert_eq!(h.stack.has_flow(&segment(other_port, h.local)), Some(false));

    // An ICMP error quotes the segment as we sent it (from us to the peer).
    let quoting = |sent: &[u8]| {
        let icmp = IcmpRepr::DestUnreachable {
            code: 13,
            next_hop_mtu: 0,
            invoking: &sent[..28],
        };
        wire::emit_icmp_packet(h.peer.ip(), h.local.ip(), 64, &icmp).unwrap()
    };
    assert_eq!(
        h.stack.has_flow(&quoting(&segment(h.local, h.peer))),
        Some(true)
    );
    assert_eq!(
        h.stack.has_flow(&quoting(&segment(h.local, other_port))),
        Some(false)
    );
    let echo = IcmpRepr::EchoRequest {
        ident: 1,
        seq: 1,
        data: b"ping",
    };
    let ping = wire::emit_icmp_packet(h.peer.ip(), h.local.ip(), 64, &echo).unwrap();
    assert_eq!(h.stack.has_flow(&ping), None, "a ping is no connection's");
    assert_eq!(h.stack.has_flow(&[0x45, 0, 0]), None, "nor is garbage");
}
