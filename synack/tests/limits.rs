//! Resource limits: the TIME_WAIT table's cap and its bytes per entry, orphans reset
//! oldest first above `tcp_max_orphans`, `max_connections`, and buffer memory pressure
//! (`tcp_mem`) shrinking windows without ever dropping accepted data.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::*;
use synack::{Config, Error, Event, Instant, Stack, TcpState};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live_heap;

/// Move packets between two stacks until neither has anything to send.
fn pump(a: &mut Stack, b: &mut Stack, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(p) = a.poll_transmit(now) {
            b.receive(now, &p);
            moved = true;
        }
        while let Some(p) = b.poll_transmit(now) {
            a.receive(now, &p);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

fn quiet_config() -> Config {
    let mut config = Config::deterministic(1);
    config.delayed_ack = Duration::ZERO;
    config.tcp_nodelay = true;
    config
}

/// Drive `total` connections from `client` through connect, accept, and a close by
/// the client first (so the client holds TIME_WAIT, as in the seed document's picture),
/// in batches; call `each_batch` after every batch.
fn drive_into_time_wait(client: &mut Stack, total: usize, mut each_batch: impl FnMut(&Stack)) {
    let server_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 80);
    let mut server = Stack::new({
        let mut config = quiet_config();
        config.secrets = synack::Secrets::Deterministic(7);
        config
    });
    server.add_address(server_addr.ip());
    let listener = server.listen(server_addr, 4096).unwrap();
    // 64 client addresses x 28,232 ephemeral ports: room for 1.8 million 4-tuples, and
    // a port still in TIME_WAIT is never picked again.
    let clients: Vec<IpAddr> = (0..64)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 19, 0, i as u8 + 1)))
        .collect();
    for &a in &clients {
        client.add_address(a);
    }
    let mut now = Instant::from_secs(1);
    let batch = 2000;
    let mut done = 0;
    while done < total {
        let n = batch.min(total - done);
        let conns: Vec<_> = (0..n)
            .map(|i| {
                let local = SocketAddr::new(clients[(done + i) % clients.len()], 0);
                client.connect_from(now, local, server_addr).unwrap()
            })
            .collect();
        pump(client, &mut server, now);
        let accepted: Vec<_> = std::iter::from_fn(|| server.accept(listener).ok()).collect();
        for c in conns {
            client.close(now, c).unwrap();
        }
        pump(client, &mut server, now);
        for c in accepted {
            server.close(now, c).unwrap();
        }
        pump(client, &mut server, now);
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        done += n;
        now += Duration::from_micros(100);
        each_batch(client);
    }
    assert_eq!(
        server.connection_count(),
        0,
        "every server connection closed"
    );
}

#[test]
fn time_wait_entries_stay_within_the_cap_at_64_bytes_or_less_each() {
    // A million connections driven into TIME_WAIT against a cap of 500,000.
    let cap = 500_000;
    let mut client = Stack::new({
        let mut config = quiet_config();
        config.tcp_max_tw_buckets = cap;
        config
    });
    let mut base: Option<(usize, usize)> = None;
    let mut at_cap: Option<(usize, usize)> = None;
    drive_into_time_wait(&mut client, 1_000_000, |s| {
        let (n, heap) = (s.time_wait_count(), live_heap());
        assert!(n <= cap, "{n} TIME_WAIT entries over the cap of {cap}");
        base.get_or_insert((n, heap));
        if n == cap && at_cap.is_none() {
            at_cap = Some((n, heap));
        }
    });
    assert_eq!(client.time_wait_count(), cap);
    assert_eq!(
        client.connection_count(),
        0,
        "nothing but TIME_WAIT is left"
    );
    // Every connection past the cap closed without TIME_WAIT, and was counted.
    assert_eq!(client.stats().time_wait_overflow, 1_000_000 - cap as u64);
    // Bytes per entry, measured by the allocator between the first batch and the cap.
    let ((n0, h0), (n1, h1)) = (base.unwrap(), at_cap.unwrap());
    let per_entry = (h1 - h0) as f64 / (n1 - n0) as f64;
    let reported = client.time_wait_memory() as f64 / cap as f64;
    eprintln!(
        "TIME_WAIT: {per_entry:.1} bytes per entry measured, {reported:.1} reported by the table"
    );
    assert!(
        per_entry <= 64.0,
        "{per_entry:.1} bytes per TIME_WAIT entry"
    );
    assert!(
        (per_entry - reported).abs() < 8.0,
        "{per_entry} vs {reported}"
    );
}

#[test]
fn orphans_above_the_cap_are_reset_oldest_first() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_max_orphans = 10;
        config
    });
    h.stack.listen(h.local, 64).unwrap();
    let mut conns = Vec::new();
    for port in 0..15u16 {
        h.peer.set_port(41000 + port);
        h.inject_syn(1000);
        let synack = h.expect_one();
        h.inject(ack(), 1001, synack.seq + 1, 65535, &[]);
        conns.push(h.accept_any());
        h.events.clear();
    }
    // The peers never answer: every close leaves a connection in FIN_WAIT_1.
    for (i, &c) in conns.iter().enumerate() {
        h.stack.close(h.now, c).unwrap();
        let out = h.outputs();
        let fin = out.iter().find(|s| s.is(fin_ack())).expect("FIN");
        assert_eq!(fin.dst.port(), 41000 + i as u16);
        let resets: Vec<u16> = out
            .iter()
            .filter(|s| s.has(rst()))
            .map(|s| s.dst.port())
            .collect();
        if i < 10 {
            assert!(resets.is_empty());
        } else {
            // The 11th orphan resets the 1st, the 12th the 2nd, ...
            assert_eq!(resets, vec![41000 + (i - 10) as u16]);
        }
        h.advance(Duration::from_millis(10));
        h.outputs();
    }
    assert_eq!(h.stack.orphan_count(), 10);
    assert_eq!(h.stack.stats().orphans_reset, 5);
    let peer = h.peer.ip();
    for port in 41000..41005 {
        let remote = SocketAddr::new(peer, port);
        assert_eq!(h.stack.state_of(h.local, remote), None);
    }
    for port in 41005..41015 {
        let remote = SocketAddr::new(peer, port);
        assert_eq!(h.stack.state_of(h.local, remote), Some(TcpState::FinWait1));
    }
}

#[test]
fn connections_beyond_max_connections_are_refused_with_no_buffer_space() {
    let mut h = Harness::new({
        let mut config = plain_config();
        config.max_connections = 2;
        config
    });
    h.stack.listen(h.local, 64).unwrap();
    let peer = h.peer;
    h.stack.connect(h.now, peer).unwrap();
    h.stack.connect(h.now, peer).unwrap();
    assert_eq!(h.stack.connect(h.now, peer), Err(Error::NoBufferSpace));
    h.outputs();
    // A SYN to the listener is dropped and counted.
    h.inject_syn(1000);
    h.expect_none();
    assert_eq!(h.stack.stats().dropped("max_connections"), 1);
    assert!(Error::NoBufferSpace.to_string().contains("max_connections"));
}

#[test]
fn memory_pressure_stops_windows_opening_and_the_hard_limit_refuses_unacknowledged_data() {
    let (pressure, high) = (40_000, 60_000);
    let mut h = Harness::new({
        let mut config = plain_config();
        config.tcp_mem = [20_000, pressure, high];
        config
    });
    let (c, iss) = h.established_passive(1000);
    let mut seq = 1001u32;
    let mut right_edge = seq + 65535;
    let mut accepted = 0usize;
    let mut frozen_at = None;
    let mut refused = None;
    let mut exhausted_at = None;
    // The application does not read; the peer sends whatever the window allows.
    for _ in 0..200 {
        let room = right_edge.wrapping_sub(seq) as usize;
        if room == 0 {
            break;
        }
        let len = room.min(1000);
        h.inject(ack(), seq, iss + 1, 65535, &vec![b'x'; len]);
        let a = h.expect_one();
        let edge = a.ack.wrapping_add(u32::from(a.win));
        assert!(
            edge.wrapping_sub(right_edge) as i32 >= 0,
            "the window never shrinks"
        );
        if a.ack == seq {
            // Over the hard limit: the data was not taken (nor acknowledged), as Linux's
            // tcp_try_rmem_schedule refuses it; the peer will send it again.
            refused = Some((seq, len));
            break;
        }
        assert_eq!(
            a.ack,
            seq.wrapping_add(len as u32),
            "in-window data is taken"
        );
        seq = seq.wrapping_add(len as u32);
        accepted += len;
        if h.stack.buffer_memory() > pressure {
            // Over the pressure mark: the right edge stays where it is.
            let frozen = *frozen_at.get_or_insert(edge);
            assert_eq!(edge, frozen, "the window must not open under pressure");
        }
        // Once over the hard limit, the buffers grow no more.
        let held = h.stack.buffer_memory();
        if let Some(limit) = exhausted_at {
            assert!(held <= limit, "grew past the hard limit: {held} > {limit}");
        } else if held > high {
            exhausted_at = Some(held);
        }
        right_edge = edge;
    }
    assert!(frozen_at.is_some(), "pressure was reached");
    let (resend_seq, resend_len) = refused.expect("the hard limit refused new data");
    assert_eq!(h.stack.stats().memory_pressure, 1);
    assert_eq!(h.stack.stats().dropped("rcv_memory_exhausted"), 1);
    // Everything acknowledged is there to read; reading ends the pressure.
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while let Ok(n) = h.stack.recv(h.now, c, &mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, accepted);
    let update = h.expect_one();
    assert!(update.win > 0, "the window reopens: {update:?}");
    // The refused data, sent again, is taken now.
    h.inject(ack(), resend_seq, iss + 1, 65535, &vec![b'y'; resend_len]);
    let a = h.expect_one();
    assert_eq!(a.ack, resend_seq.wrapping_add(resend_len as u32));
    assert_eq!(h.stack.recv(h.now, c, &mut buf), Ok(resend_len));
    // And once idle, the buffers hold nothing.
    h.advance(Duration::from_secs(2));
    assert_eq!(h.stack.buffer_memory(), 0);
    assert!(!h.events.iter().any(|e| matches!(e, Event::Error { .. })));
}
