//! `synack-bench-scale N M`: the `scale` benchmark, in a process of its own whose
//! counting allocator (stats_alloc) measures memory. Prints one JSON object:
//!
//! - `bytes_per_conn`: heap per idle established connection, with N open;
//! - `establish_seconds`: time to establish all N (handshakes from a packet generator);
//! - `cost_ratio`: time to process a data segment (and send its ACK) with N connections
//!   open, over the same with 10 open (flat is the goal: O(1) demultiplexing and timers);
//! - `bytes_per_time_wait`: heap per TIME_WAIT entry, M connections driven through a
//!   whole lifecycle into TIME_WAIT.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as WallClock};

use rand::{RngExt, SeedableRng};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use synack::wire::{self, SeqNum, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use synack::{Config, ConnectionHandle, Instant, Stack};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live_heap() -> usize {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated)
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// The i-th client: 60,000 ports on each of as many addresses from 198.19.0.1 up.
fn client(i: usize) -> SocketAddr {
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 1));
    let ip = Ipv4Addr::from(base + (i / 60_000) as u32);
    SocketAddr::new(IpAddr::V4(ip), 1024 + (i % 60_000) as u16)
}

/// A peer we play by hand: its 4-tuple and sequence numbers.
#[derive(Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    snd_nxt: u32,
    rcv_nxt: u32,
    ts_recent: u32,
}

fn segment(peer: &Peer, flags: TcpFlags, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: peer.addr.port(),
        dst_port: 80,
        seq: SeqNum::new(peer.snd_nxt),
        ack: SeqNum::new(peer.rcv_nxt),
        flags,
        window: 65535,
        urgent: 0,
        options,
        payload,
    };
    wire::emit_tcp_packet(peer.addr.ip(), IpAddr::V4(SERVER), 64, &repr).expect("emit")
}

fn ts(peer: &Peer, now: u32) -> TcpOptions {
    TcpOptions {
        timestamps: Some(Timestamps {
            tsval: now,
            tsecr: peer.ts_recent,
        }),
        ..TcpOptions::default()
    }
}

/// A server with `n` idle established connections (accepted by the application), and
/// the peers; also how long the handshakes took.
fn establish(n: usize) -> (Stack, Vec<Peer>, Vec<ConnectionHandle>, Duration) {
    let mut server = Stack::new(Config {
        somaxconn: 1 << 16,
        ..Config::deterministic(1)
    });
    server.add_address(IpAddr::V4(SERVER));
    let listener = server
        .listen(SocketAddr::new(IpAddr::V4(SERVER), 80), 1 << 16)
        .expect("listen");
    let now = Instant::from_secs(1);
    let mut peers = Vec::with_capacity(n);
    let mut conns = Vec::with_capacity(n);
    let t0 = WallClock::now();
    for i in 0..n {
        let mut peer = Peer {
            addr: client(i),
            snd_nxt: 1000,
            rcv_nxt: 0,
            ts_recent: 0,
        };
        let syn = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
            ..TcpOptions::default()
        };
        server.receive(now, &segment(&peer, TcpFlags::SYN, syn, &[]));
        let synack = server.poll_transmit(now).expect("SYN-ACK");
        let (_, seg) = wire::parse_tcp_packet(&synack).expect("valid SYN-ACK");
        peer.snd_nxt += 1;
        peer.rcv_nxt = seg.seq.get().wrapping_add(1);
        peer.ts_recent = seg.options.timestamps.map_or(0, |t| t.tsval);
        server.receive(now, &segment(&peer, TcpFlags::ACK, ts(&peer, 2), &[]));
        conns.push(server.accept(listener).expect("established"));
        while server.poll_event().is_some() {}
        peers.push(peer);
    }
    (server, peers, conns, t0.elapsed())
}

/// Seconds per data segment (100 bytes, in order, to a random connection, then the ACK
/// and the application's read).
fn segment_cost(server: &mut Stack, peers: &mut [Peer], conns: &[ConnectionHandle]) -> f64 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let rounds = 200_000;
    let payload = [b'd'; 100];
    let mut buf = [0u8; 200];
    let mut packet_buf = vec![0u8; server.max_packet_size()];
    let now = Instant::from_secs(2);
    let picks: Vec<usize> = (0..rounds)
        .map(|_| rng.random_range(0..peers.len()))
        .collect();
    // Every connection receives (and the application reads) one segment first, so that
    // the timed segments find their connection as a busy one has it at any scale (its
    // receive buffer allocated), as the ten-connection case has at once.
    for i in 0..peers.len() {
        let p = &mut peers[i];
        let seg = segment(p, TcpFlags::ACK | TcpFlags::PSH, ts(p, 3), &payload);
        p.snd_nxt += 100;
        server.receive(now, &seg);
        while server.poll_transmit_into(now, &mut packet_buf).is_some() {}
        let _ = server.recv(now, conns[i], &mut buf);
    }
    let packets: Vec<Vec<u8>> = picks
        .iter()
        .map(|&i| {
            let p = &mut peers[i];
            let seg = segment(p, TcpFlags::ACK | TcpFlags::PSH, ts(p, 3), &payload);
            p.snd_nxt += 100;
            seg
        })
        .collect();
    let t0 = WallClock::now();
    for (&i, packet) in picks.iter().zip(&packets) {
        server.receive(now, packet);
        while server.poll_transmit_into(now, &mut packet_buf).is_some() {}
        let _ = server.recv(now, conns[i], &mut buf);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    while server.poll_event().is_some() {}
    elapsed / rounds as f64
}

/// Heap per TIME_WAIT entry: `m` connections from a client stack to a server stack,
/// the client closing first, in batches; measured between the first batch and the end.
fn time_wait_bytes(m: usize) -> f64 {
    let quiet = Config {
        delayed_ack: Duration::ZERO,
        tcp_nodelay: true,
        tcp_max_tw_buckets: m,
        ..Config::deterministic(1)
    };
    let server_addr = SocketAddr::new(IpAddr::V4(SERVER), 80);
    let mut server = Stack::new(Config {
        secrets: synack::Secrets::Deterministic(7),
        ..quiet.clone()
    });
    server.add_address(server_addr.ip());
    let listener = server.listen(server_addr, 4096).expect("listen");
    let mut client = Stack::new(quiet);
    let addrs: Vec<IpAddr> = (0..(m / 20_000 + 1))
        .map(|i| {
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 19, 0, 1)) + i as u32,
            ))
        })
        .collect();
    for &a in &addrs {
        client.add_address(a);
    }
    let now = Instant::from_secs(1);
    let pump = |a: &mut Stack, b: &mut Stack| loop {
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
    };
    let mut base = None;
    let mut done = 0;
    while done < m {
        let n = 2000.min(m - done);
        let conns: Vec<_> = (0..n)
            .map(|i| {
                let local = SocketAddr::new(addrs[(done + i) % addrs.len()], 0);
                client
                    .connect_from(now, local, server_addr)
                    .expect("connect")
            })
            .collect();
        pump(&mut client, &mut server);
        let accepted: Vec<_> = std::iter::from_fn(|| server.accept(listener).ok()).collect();
        for c in conns {
            client.close(now, c).expect("close");
        }
        pump(&mut client, &mut server);
        for c in accepted {
            server.close(now, c).expect("close");
        }
        pump(&mut client, &mut server);
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        done += n;
        if base.is_none() {
            base = Some((client.time_wait_count(), live_heap()));
        }
    }
    let (n0, h0) = base.unwrap_or((0, 0));
    let (n1, h1) = (client.time_wait_count(), live_heap());
    (h1 as f64 - h0 as f64) / (n1 - n0).max(1) as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (n, m) = match args[..] {
        [n, m] => (n, m),
        _ => {
            eprintln!("usage: synack-bench-scale CONNECTIONS TIME_WAIT_ENTRIES");
            std::process::exit(2);
        }
    };
    let before = live_heap();
    let (mut server, mut peers, conns, took) = establish(n);
    // The stack's heap only: the bench's own arrays of peers and handles are not counted.
    let bench_arrays = peers.capacity() * std::mem::size_of::<Peer>()
        + conns.capacity() * std::mem::size_of::<ConnectionHandle>();
    let bytes_per_conn = (live_heap() - before - bench_arrays) as f64 / n as f64;
    eprintln!(
        "  scale: {n} connections established in {:.2} s, {bytes_per_conn:.0} bytes each",
        took.as_secs_f64()
    );
    let cost_many = segment_cost(&mut server, &mut peers, &conns);
    drop((server, peers, conns));
    // A middle point, to tell growth from the cache hierarchy from algorithmic growth.
    let mid = (n / 10).max(10);
    let (mut s, mut p, c, _) = establish(mid);
    let cost_mid = segment_cost(&mut s, &mut p, &c);
    drop((s, p, c));
    let (mut small, mut few, few_conns, _) = establish(10);
    let cost_few = segment_cost(&mut small, &mut few, &few_conns);
    eprintln!(
        "  scale: ns per segment: {:.0} with {n} open, {:.0} with {mid}, {:.0} with 10",
        cost_many * 1e9,
        cost_mid * 1e9,
        cost_few * 1e9
    );
    let bytes_per_time_wait = time_wait_bytes(m);
    println!(
        "{}",
        serde_json::json!({
            "connections": n,
            "bytes_per_conn": bytes_per_conn,
            "establish_seconds": took.as_secs_f64(),
            "cost_ratio": cost_many / cost_few,
            "ns_per_segment_many": cost_many * 1e9,
            "ns_per_segment_10": cost_few * 1e9,
            "ns_per_segment_tenth": cost_mid * 1e9,
            "time_wait_entries": m,
            "bytes_per_time_wait": bytes_per_time_wait,
        })
    );
}
