//! `synack-bench-scale N M`: the `scale` benchmark, in a process of its own whose
//! counting allocator (stats_alloc) measures memory. Prints one JSON object:
//!
//! - `bytes_per_conn`: heap per idle established connection, with N open;
//! - `establish_seconds`: time to establish all N (handshakes from a packet generator);
//! - `cost_ratio`: time to process a data segment (and send its ACK) with N connections
//!   open, over the same with 10 open (flat is the goal: O(1) demultiplexing and timers);
//!   every connection has received once before the timed segments;
//! - `memory_latency_ns_many`, `memory_latency_ns_10`: one dependent memory access over
//!   the working set of N connections and of ten (what the cost ratio is read against);
//! - `bytes_per_time_wait`: heap per TIME_WAIT entry, M connections driven through a
//!   whole lifecycle into TIME_WAIT;
//! - `concurrent_*`: N/100 connections (100 to 10,000) moving 1 MB each at once between
//!   two stacks with a 64 MiB buffer budget (`tcp_mem`) each: the time, the most each
//!   stack counted in its buffers, the most heap both took.

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
    let mut server = Stack::new({
        let mut config = Config::deterministic(1);
        config.somaxconn = 1 << 16;
        config
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

/// A client stack with enough addresses for `conns` connections (20,000 each) and a
/// server stack listening on port 80, both with `config` (the server with its own
/// secrets).
struct Pair {
    client: Stack,
    server: Stack,
    listener: synack::ListenerHandle,
    server_addr: SocketAddr,
    client_addrs: Vec<IpAddr>,
}

fn pair(config: Config, conns: usize) -> Pair {
    let server_addr = SocketAddr::new(IpAddr::V4(SERVER), 80);
    let mut server = Stack::new({
        let mut config = config.clone();
        config.secrets = synack::Secrets::Deterministic(7);
        config
    });
    server.add_address(server_addr.ip());
    let listener = server.listen(server_addr, 4096).expect("listen");
    let mut client = Stack::new(config);
    let client_addrs: Vec<IpAddr> = (0..(conns / 20_000 + 1))
        .map(|i| {
            IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(198, 19, 0, 1)) + i as u32,
            ))
        })
        .collect();
    for &a in &client_addrs {
        client.add_address(a);
    }
    Pair {
        client,
        server,
        listener,
        server_addr,
        client_addrs,
    }
}

/// Carry every packet each stack has to send to the other; whether any moved.
fn exchange(a: &mut Stack, b: &mut Stack, buf: &mut [u8], now: Instant) -> bool {
    let mut moved = false;
    while let Some(t) = a.poll_transmit_into(now, buf) {
        b.receive(now, &buf[..t.len]);
        moved = true;
    }
    while let Some(t) = b.poll_transmit_into(now, buf) {
        a.receive(now, &buf[..t.len]);
        moved = true;
    }
    moved
}

/// Heap per TIME_WAIT entry: `m` connections from a client stack to a server stack,
/// the client closing first, in batches; measured between the first batch and the end.
fn time_wait_bytes(m: usize) -> f64 {
    let quiet = {
        let mut config = Config::deterministic(1);
        config.delayed_ack = Duration::ZERO;
        config.tcp_nodelay = true;
        config.tcp_max_tw_buckets = m;
        config
    };
    let Pair {
        mut client,
        mut server,
        listener,
        server_addr,
        client_addrs: addrs,
    } = pair(quiet, m);
    let now = Instant::from_secs(1);
    let mut buf = vec![0u8; client.max_packet_size().max(server.max_packet_size())];
    let mut pump = |a: &mut Stack, b: &mut Stack| while exchange(a, b, &mut buf, now) {};
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

/// Nanoseconds per dependent load (each address read from the one before) over
/// `bytes` of memory touched in a random cycle of cache lines: the latency a lookup pays
/// at a given working set, to read the per-segment costs against.
fn memory_latency_ns(bytes: usize) -> f64 {
    let lines = (bytes / 64).max(2);
    // Sattolo's shuffle: one cycle through every line.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for i in (1..lines).rev() {
        let j = rng.random_range(0..i);
        order.swap(i, j);
    }
    let mut next = vec![[0u64; 8]; lines];
    for i in 0..lines {
        next[order[i] as usize][0] = u64::from(order[(i + 1) % lines]);
    }
    drop(order);
    let hops = 2_000_000;
    let t0 = WallClock::now();
    let mut at = 0usize;
    for _ in 0..hops {
        at = next[at][0] as usize;
    }
    let ns = t0.elapsed().as_nanos() as f64 / f64::from(hops);
    std::hint::black_box(at);
    ns
}

/// What `concurrent` measured.
struct Concurrent {
    /// The most heap the transfer took beyond the established, idle connections.
    peak_heap: usize,
    /// The most bytes each stack (sender, receiver) counted in its buffers: the storage
    /// they hold, what `tcp_mem` limits.
    peak_buffered: [usize; 2],
    seconds: f64,
}

/// `n` connections between two stacks, each moving `bytes` from client to server at
/// once, with a buffer budget of `budget` bytes per stack (`tcp_mem`: pressure at three
/// quarters of it, the hard limit at it). The applications write whatever each socket
/// takes and read whatever arrives, round after round; every byte must arrive.
fn concurrent(n: usize, bytes: usize, budget: usize) -> Concurrent {
    let config = {
        let mut config = Config::deterministic(1);
        config.tcp_mem = [budget / 2, budget / 4 * 3, budget];
        config
    };
    let Pair {
        mut client,
        mut server,
        listener,
        server_addr,
        client_addrs: addrs,
    } = pair(config, n);
    let mut buf = vec![0u8; client.max_packet_size().max(server.max_packet_size())];
    let start = WallClock::now();
    let clock = |t0: WallClock| Instant::from_secs(1) + t0.elapsed();
    // Timers fire as they fall due, then packets move until both stacks are quiet.
    let pump = |a: &mut Stack, b: &mut Stack, buf: &mut [u8], now: Instant| loop {
        for s in [&mut *a, &mut *b] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.on_timeout(now);
            }
        }
        if !exchange(a, b, buf, now) {
            break;
        }
    };
    let mut conns = Vec::with_capacity(n);
    let mut accepted = Vec::with_capacity(n);
    while conns.len() < n {
        let now = clock(start);
        for i in conns.len()..(conns.len() + 1000).min(n) {
            let local = SocketAddr::new(addrs[i % addrs.len()], 0);
            conns.push(
                client
                    .connect_from(now, local, server_addr)
                    .expect("connect"),
            );
        }
        pump(&mut client, &mut server, &mut buf, now);
        accepted.extend(std::iter::from_fn(|| server.accept(listener).ok()));
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
    }
    assert_eq!(accepted.len(), n, "every connection established");
    let base = live_heap();
    let (mut peak_heap, mut peak_buffered) = (0usize, [0usize; 2]);
    let mut watch = |client: &Stack, server: &Stack| {
        peak_heap = peak_heap.max(live_heap().saturating_sub(base));
        peak_buffered[0] = peak_buffered[0].max(client.buffer_memory());
        peak_buffered[1] = peak_buffered[1].max(server.buffer_memory());
    };
    let mut sent = vec![0usize; n];
    let mut received = 0usize;
    let chunk = vec![b'x'; 64 * 1024];
    let t0 = WallClock::now();
    while received < n * bytes {
        let now = clock(start);
        for (c, done) in conns.iter().zip(sent.iter_mut()) {
            while *done < bytes {
                match client.send(now, *c, &chunk[..(bytes - *done).min(chunk.len())]) {
                    Ok(k) if k > 0 => *done += k,
                    _ => break,
                }
            }
        }
        watch(&client, &server);
        pump(&mut client, &mut server, &mut buf, now);
        watch(&client, &server);

        for s in &accepted {
            while let Ok(k) = server.recv_with(now, *s, |a, b| a.len() + b.len()) {
                if k == 0 {
                    break;
                }
                received += k;
            }
        }
        pump(&mut client, &mut server, &mut buf, now);
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "the transfer stalled: {received} of {} bytes",
            n * bytes
        );
    }
    Concurrent {
        peak_heap,
        peak_buffered,
        seconds: t0.elapsed().as_secs_f64(),
    }
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
    // What one dependent memory access costs at the working set of n connections, and
    // of ten (in cache): a segment to a random connection of n makes several in a row
    // (index entry, slot, connection, receive buffer).
    let latency_many = memory_latency_ns(n * bytes_per_conn as usize);
    let latency_few = memory_latency_ns(10 * bytes_per_conn as usize);
    eprintln!(
        "  scale: a dependent memory access costs {latency_many:.0} ns over {} MB, {latency_few:.1} ns over {} KB",
        n * bytes_per_conn as usize / 1_000_000,
        10 * bytes_per_conn as usize / 1000
    );
    // 10,000 connections moving 1 MB each at once in a 64 MiB budget (fewer in --quick).
    let (cn, budget) = ((n / 100).clamp(100, 10_000), 64usize << 20);
    let conc = concurrent(cn, 1 << 20, budget);
    eprintln!(
        "  scale: {cn} connections x 1 MB at once: {:.1} s; buffers at most {:.1} MiB (sender) and {:.1} MiB (receiver) of a {} MiB budget each; heap of both at most {:.1} MiB",
        conc.seconds,
        conc.peak_buffered[0] as f64 / f64::from(1 << 20),
        conc.peak_buffered[1] as f64 / f64::from(1 << 20),
        budget >> 20,
        conc.peak_heap as f64 / f64::from(1 << 20)
    );
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
            "memory_latency_ns_many": latency_many,
            "memory_latency_ns_10": latency_few,
            "bytes_per_time_wait": bytes_per_time_wait,
            "concurrent_connections": cn,
            "concurrent_seconds": conc.seconds,
            "concurrent_peak_heap_bytes": conc.peak_heap,
            "concurrent_peak_sender_buffer_bytes": conc.peak_buffered[0],
            "concurrent_peak_receiver_buffer_bytes": conc.peak_buffered[1],
        })
    );
}
